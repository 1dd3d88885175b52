#!/usr/bin/python3
"""scripts/run-demo (what `make run` runs) works as its instructions say:
on 127.0.0.1:2525 (STARTTLS) and 4650 (implicit) the printed swaks --tls and
--tlsc commands deliver to the demo backend (which prints the messages),
openssl s_client -starttls smtp negotiates TLS 1.3, plaintext swaks gets 530
and an alert; mailward starts without a warning; Ctrl-C (SIGINT to the
process group) stops mailward and the backend.  run-demo uses fixed ports: skipped when one of them is in use.
Runs the test build (MAILWARD_BIN) in a demo directory under env.dir."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

PORTS = (2525, 4650, 10025)


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    print("$ %s\n-> exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout[-3000:], r.stderr))
    return r


def main():
    busy = [p for p in PORTS if mwtest.is_listening(p)]
    if busy:
        mwtest.skip("run-demo's fixed ports are in use: %r" % busy)
    check = mwtest.check
    with mwtest.Env("demo") as env:
        demo = env.path("demo")
        out = env.path("run-demo.out")
        envv = dict(os.environ, MAILWARD_BIN=mwtest.MAILWARD, MAILWARD_DEMO_DIR=demo)
        p = env.spawn([os.path.join(mwtest.REPO, "scripts", "run-demo")], log=out, env=envv,
                      cwd=mwtest.REPO)

        def output():
            return open(out, errors="replace").read()

        missing = mwtest.wait_listening([2525, 4650], 60, alive=lambda: p.poll() is None)
        check(p.poll() is None and not missing,
              "run-demo did not come up (exit %s, not listening %r):\n%s"
              % (p.poll(), missing, output()))
        ca = os.path.join(demo, "certs", "ca.pem")
        text = output()
        for needle in ("--tls ", "--tlsc", "openssl s_client -starttls smtp", "530"):
            check(needle in text, "run-demo's instructions lack %r:\n%s" % (needle, text))
        # A first run shows no warning (as root too: the key is readable by
        # the user the demo runs as, as README asks).
        check(": warning: " not in text and ": err: " not in text,
              "warnings or errors in the demo's output:\n%s" % text)

        base = ["swaks", "--server", "127.0.0.1", "--to", "user@example.test",
                "--from", "demo@sender.test", "--timeout", "20"]
        r = run(base + ["--port", "2525", "--tls", "--tls-verify", "--tls-ca-path", ca,
                        "--header", "Subject: demo starttls"])
        check(r.returncode == 0, "swaks --tls through the demo: exit %d" % r.returncode)
        r = run(base + ["--port", "4650", "--tlsc", "--tls-verify", "--tls-ca-path", ca,
                        "--header", "Subject: demo tlsc"])
        check(r.returncode == 0, "swaks --tlsc through the demo: exit %d" % r.returncode)
        r = run(base + ["--port", "2525"])
        check(r.returncode == 23 and "530 5.7.0" in r.stdout,
              "plaintext swaks: exit %d, expected 23 with 530 5.7.0" % r.returncode)
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                            "127.0.0.1:2525", "-CAfile", ca, "-brief"], input=b"QUIT\r\n",
                           capture_output=True, timeout=30)
        so = (r.stdout + r.stderr).decode("utf-8", "replace")
        print("openssl s_client: exit %d\n%s" % (r.returncode, so))
        check("Protocol version: TLSv1.3" in so, "openssl s_client did not get TLSv1.3")

        end = time.monotonic() + 10
        while time.monotonic() < end and ("Subject: demo tlsc" not in output()
                                          or "Subject: demo starttls" not in output()):
            time.sleep(0.2)
        text = output()
        check("Subject: demo starttls" in text and "Subject: demo tlsc" in text,
              "the demo backend did not print both messages:\n%s" % text)
        alerts = open(os.path.join(demo, "alerts.json")).read()
        check("plaintext_refused" in alerts, "no plaintext_refused alert: %r" % alerts)

        os.killpg(p.pid, signal.SIGINT)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            mwtest.fail("run-demo still running 20 s after Ctrl-C:\n%s" % output()[-3000:])
        print("run-demo exit %d after SIGINT" % rc)
        print(output()[-3000:])
        time.sleep(0.5)
        still = [port for port in PORTS if mwtest.is_listening(port)]
        check(not still, "still listening after Ctrl-C: %r" % still)
        check(rc in (0, 130), "run-demo exit status %d after Ctrl-C" % rc)
        check("AddressSanitizer" not in output() and "runtime error:" not in output(),
              "sanitizer report in the demo's output")
    print("ok")


if __name__ == "__main__":
    main()
