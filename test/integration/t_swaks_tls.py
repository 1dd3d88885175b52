#!/usr/bin/python3
"""swaks (real software): --tls (STARTTLS) and --tlsc (TLS on connect) with
certificate verification against the test CA both exit 0 and the messages
arrive; plain swaks to the require_tls listener gets 530 at MAIL (exit 23)
and nothing reaches the backend."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"


def swaks(env, port, *extra, subject="swaks test"):
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port),
            "--from", "a@sender.test", "--to", "b@rcpt.test",
            "--ehlo", "client.swaks.test", "--header", "Subject: " + subject,
            "--body", "body of " + subject, "--timeout", "20"] + list(extra)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    print("$ %s\n-> exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def main():
    if not shutil.which("swaks"):
        mwtest.skip("swaks is not installed")
    with mwtest.Env("swaks_tls") as env:
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        mw = env.mailward(listeners={
            "smtp": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd},
            "smtps": {"accept_tls": "implicit", "hostname": NAME, "forward": fwd}})
        ca = os.path.join(env.certs, "ca.pem")
        verify = ["--tls-verify", "--tls-ca-path", ca]

        r = swaks(env, mw.port("smtp"), "--tls", *verify, subject="swaks starttls")
        mwtest.eq(r.returncode, 0, "swaks --tls exit status")
        mwtest.check("TLS started" in r.stdout or "TLS started" in r.stderr,
                     "swaks did not report TLS started")
        r = swaks(env, mw.port("smtps"), "--tlsc", *verify, subject="swaks tlsc")
        mwtest.eq(r.returncode, 0, "swaks --tlsc exit status")

        msgs = be.wait_messages(2, 10)
        subjects = sorted(m.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
                          for m in msgs if b"Subject: " in m.data)
        mwtest.eq(subjects, ["swaks starttls", "swaks tlsc"], "messages at the backend")
        for m in msgs:
            mwtest.eq(m.helo, "client.swaks.test", "EHLO name at the backend")

        r = swaks(env, mw.port("smtp"), subject="swaks plaintext")
        mwtest.eq(r.returncode, 23, "plaintext swaks exit status (error in MAIL)")
        mwtest.check("530 5.7.0" in r.stdout, "no 530 5.7.0 in swaks' transcript")
        mwtest.eq(len(be.messages), 2, "messages at the backend after the plaintext attempt")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
