#!/usr/bin/python3
"""SIGHUP reads the configuration file again: the settings a running
mailward can take (log_level, and per listener hostname, the limits, the
timeouts, policy, default_level, learned_max_age, tlsrpt_from) are applied,
the others are named as needing a restart and left as they were, and a file
with errors changes nothing.

mailward runs with workers = 2 (each worker and the supervisor read the file
again). The file is rewritten, then SIGHUP:
1. hostname, max_per_client and log_level changed, and another listener's
   (implicit TLS) cert and key files: three event=reload_config lines
   (supervisor and workers) with applied="log_level [smtp] hostname [smtp]
   max_per_client [tls] cert [tls] key"; new TLS sessions get the new
   certificate; every new session greets with the new name
   (ten sessions, so both workers; one that max_per_client 1 refuses
   names it in its 421); debug lines appear in the log.
2. A syntax error: event=reload_config_problem naming the line and
   event=reload_config_failed, from each process; sessions still greet with
   the name of step 1.
2b. A new host name beside a cert file that does not exist (mailward -t
   would refuse it): event=reload_config_failed listener=tls from each
   process, and the host name is not applied either.
3. listen changed (and timeout_command): restart_needed="[smtp] listen",
   applied="[smtp] timeout_command", a warning; the old address still
   serves, the new one was not opened.
4. forward moved to another backend (a plaintext one: forward_tls none):
   applied="[smtp] forward" and an event=reload_forward line from each
   process. A session whose MAIL had opened its backend connection before
   the reload delivers its message to the old backend; a new session
   delivers to the new one (each from an address of its own: max_per_client
   is 1, and a session just ended may not be gone yet).
4b. forward_source an address this host does not have: the new backend
   is not used, and nothing else of the file is applied either
   (event=reload_config_failed listener=smtp naming the source).
mailward then stops cleanly."""

import os
import re
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
from t_reload_tls import pem_fingerprint, served  # noqa: E402


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
        s.sendall(b"QUIT\r\n")
    return data.decode("ascii", "replace")


def hup(mw, event, n=3):
    """SIGHUP; wait for n more event= lines (the supervisor and two workers)."""
    before = len(outcheck.log_events(mw, event))
    os.kill(mw.pid, signal.SIGHUP)
    ok = mwtest.wait_for(lambda: len(outcheck.log_events(mw, event)) >= before + n, 10)
    mwtest.check(ok, "after SIGHUP, fewer than %d event=%s lines:\n%s"
                 % (n, event, mw.log()[-3000:]))
    return outcheck.log_events(mw, event)[before:]


def main():
    with mwtest.Env("reload_config") as env:
        be = env.recorder()
        port = mwtest.free_port()
        smtp = {"listen": "127.0.0.1:%d" % port, "forward": "127.0.0.1:%d" % be.port,
                "hostname": "before.test", "max_per_client": "5"}
        tls = {"listen": "127.0.0.1:%d" % mwtest.free_port(), "accept_tls": "implicit",
               "forward": "127.0.0.1:%d" % be.port}
        g = {"workers": 2, "log_level": "info"}
        mw = env.mailward(listeners={"smtp": smtp, "tls": tls}, globals=g)
        mwtest.check(greeting(port).startswith("220 before.test "), "greeting at start")
        old = served(env, mw, "tls", True)

        def rewrite(listener, glob, tls_listener=mw.listeners["tls"]):
            mwtest.write_config(env, mw.conf, {"smtp": listener, "tls": tls_listener}, glob,
                                mw.alert_log)

        print("== 1. running settings applied", flush=True)
        smtp1 = dict(smtp, hostname="after.test", max_per_client="1")
        cert, key = mwtest.make_leaf_cert(env, "localhost", ["localhost", "127.0.0.1"])
        tls1 = dict(mw.listeners["tls"], cert=cert, key=key)
        os.chmod(key, 0o644)  # read again as nobody
        rewrite(smtp1, dict(g, log_level="debug"), tls1)
        got = hup(mw, "reload_config")
        mwtest.eq([(x.get("applied"), x.get("restart_needed")) for x in got],
                  [("log_level [smtp] hostname [smtp] max_per_client [tls] cert [tls] key",
                    "")] * 3, "event=reload_config lines")
        new = served(env, mw, "tls", True)
        mwtest.eq([new != old, new], [True, pem_fingerprint(cert)],
                  "the certificate served after the reload")
        # (a 421 of max_per_client 1, when the session before has not ended
        # yet, names the host too)
        greets = [greeting(port) for _ in range(10)]
        mwtest.check(all(re.match(r"(220|421 4\.7\.0) after\.test ", x) for x in greets),
                     "greetings after the reload: %r" % greets)
        mwtest.check(mwtest.wait_for(lambda: re.search(r": debug: ", mw.log()), 5),
                     "no debug line after log_level = debug:\n%s" % mw.log()[-2000:])

        print("== 2. a file with an error changes nothing", flush=True)
        with open(mw.conf, "a") as f:
            f.write("this is not a setting\n")
        got = hup(mw, "reload_config_failed")
        mwtest.eq(len(got), 3, "event=reload_config_failed lines")
        with open(mw.conf) as f:
            bad_line = len(f.read().splitlines())
        problems = [x.get("problem") for x in outcheck.log_events(mw, "reload_config_problem")]
        print("problems: %r" % problems)
        mwtest.check(len(problems) == 3 and all(
            p.startswith("%s:%d:" % (mw.conf, bad_line)) and "syntax" in p for p in problems),
            "event=reload_config_problem lines (file:%d: syntax error): %r"
            % (bad_line, problems))
        mwtest.check(re.match(r"(220|421 4\.7\.0) after\.test ", greeting(port)),
                     "greeting after a failed reload")

        print("== 2b. a certificate file that does not load: nothing applied", flush=True)
        before = len(outcheck.log_events(mw, "reload_config_failed"))
        rewrite(dict(smtp1, hostname="never.test"), dict(g, log_level="debug"),
                dict(tls1, cert=env.path("no-such-cert.pem")))
        got = hup(mw, "reload_config_failed")
        mwtest.eq(len(got), 3, "event=reload_config_failed lines")
        mwtest.check(all(x.get("listener") == "tls" and "no-such-cert.pem" in x.get("reason", "")
                         for x in got), "reload_config_failed lines: %r" % got)
        mwtest.eq(len(outcheck.log_events(mw, "reload_config_failed")), before + 3,
                  "event=reload_config_failed lines in all")
        mwtest.check(re.match(r"(220|421 4\.7\.0) after\.test ", greeting(port)),
                     "the host name of a file whose certificate does not load was applied")

        print("== 3. what needs a restart is named and left", flush=True)
        newport = mwtest.free_port()
        rewrite(dict(smtp1, listen="127.0.0.1:%d" % newport, timeout_command="100"),
                dict(g, log_level="debug"), tls1)
        got = hup(mw, "reload_config")
        mwtest.eq([(x.get("applied"), x.get("restart_needed")) for x in got],
                  [("[smtp] timeout_command", "[smtp] listen")] * 3,
                  "event=reload_config lines")
        mwtest.check(" warning: - event=reload_config " in mw.log(),
                     "a reload that needs a restart is not a warning")
        mwtest.check(re.match(r"(220|421 4\.7\.0) after\.test ", greeting(port)),
                     "the old address")
        try:
            socket.create_connection(("127.0.0.1", newport), timeout=2).close()
            mwtest.fail("the new listen address was opened by a reload")
        except ConnectionRefusedError:
            pass

        print("== 4. forward moves to another backend", flush=True)
        be2 = env.recorder()
        smtp4 = dict(smtp1, timeout_command="100")
        held, _ = mwtest.raw_tls_client(env, port, source="127.0.0.4")
        mwtest.eq(held.cmd("MAIL FROM:<old@sender.test>").code, 250, "MAIL before the reload")
        rewrite(dict(smtp4, forward="127.0.0.1:%d" % be2.port), dict(g, log_level="debug"),
                tls1)
        got = hup(mw, "reload_config")
        mwtest.eq([(x.get("applied"), x.get("restart_needed")) for x in got],
                  [("[smtp] forward", "")] * 3, "event=reload_config lines")
        moved = outcheck.log_events(mw, "reload_forward")
        mwtest.eq([(x.get("listener"), x.get("address")) for x in moved],
                  [("smtp", "127.0.0.1:%d" % be2.port)] * 3, "event=reload_forward lines")

        def send(c, sender):
            for line, code in (("RCPT TO:<b@rcpt.test>", 250), ("DATA", 354),
                               ("Subject: %s\r\n\r\nhi\r\n." % sender, 250)):
                r = c.cmd(line)
                mwtest.eq(r.code, code, "%s: %s: %r" % (sender, line[:12], r))
            c.cmd("QUIT")
            c.close()
        send(held, "old")
        new, _ = mwtest.raw_tls_client(env, port, source="127.0.0.2")
        mwtest.eq(new.cmd("MAIL FROM:<new@sender.test>").code, 250, "MAIL after the reload")
        send(new, "new")
        old_got = [m.mail_from for m in be.wait_messages(1)]
        new_got = [m.mail_from for m in be2.wait_messages(1)]
        mwtest.eq((old_got, new_got), (["old@sender.test"], ["new@sender.test"]),
                  "senders at the old and the new backend")

        print("== 4b. a forward_source this host does not have: nothing applied",
              flush=True)
        before = len(outcheck.log_events(mw, "reload_config_failed"))
        rewrite(dict(smtp4, forward="127.0.0.1:%d" % be.port, forward_source="192.0.2.99",
                     hostname="never.test"), dict(g, log_level="debug"), tls1)
        got = hup(mw, "reload_config_failed")
        mwtest.check(len(got) == 3 and all(x.get("listener") == "smtp" and
                                           "192.0.2.99" in x.get("reason", "") for x in got),
                     "reload_config_failed lines: %r" % got)
        mwtest.eq(len(outcheck.log_events(mw, "reload_config_failed")), before + 3,
                  "event=reload_config_failed lines in all")
        mwtest.check(re.match(r"(220|421 4\.7\.0) after\.test ", greeting(port)),
                     "the host name of a file whose forward_source is not here was applied")
        # Another source address: max_per_client is 1, and the session of the
        # greeting just above may not have ended yet.
        c, _ = mwtest.raw_tls_client(env, port, source="127.0.0.3")
        mwtest.eq(c.cmd("MAIL FROM:<still@sender.test>").code, 250, "MAIL after 4b")
        send(c, "still")
        mwtest.eq([m.mail_from for m in be2.wait_messages(2)][-1], "still@sender.test",
                  "the backend after a failed reload")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
