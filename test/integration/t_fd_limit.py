#!/usr/bin/python3
"""Running out of file descriptors (RLIMIT_NOFILE), started under prlimit.

1. Soft 256, hard 4096: mailward raises the soft limit to the hard one
   (/proc/PID/limits says 4096 4096) and logs event=nofile at info: 4096
   covers the listener's max_sessions (100: 2 x 100 + 64 needed).
2. Soft and hard 48 with max_sessions 100: a warning event=nofile
   limit=48 needed=264 at start. 60 clients connect at once and wait for
   the greeting: some get mailward's 220; once a connection lands on one
   of the last 16 descriptors (RELAY_FD_SPARE) it gets "421 ... out of file
   descriptors" and an event=refused line instead; none is closed
   unanswered (each refusal closes its descriptor before the next accept,
   so the reserve is never used up). Once those
   clients are gone, a new one gets its 220 and a message is delivered
   over STARTTLS: the listener did not stop accepting. The metrics file
   counts the refusals in mailward_sessions_refused_total{reason=
   "file_descriptors"}."""

import os
import smtplib
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: after the storm\r\n\r\nhi\r\n"


def nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return tuple(int(x) for x in line.split()[3:5])
    return None



def main():
    with mwtest.Env("fd_limit") as env:
        backend = env.recorder()
        ls = {"smtp": {"forward": "127.0.0.1:%d" % backend.port, "max_sessions": 100,
                       "max_per_client": 100}}

        print("== 1. the soft limit is raised to the hard one", flush=True)
        mw = env.mailward(listeners=ls, wrap=["prlimit", "--nofile=256:4096", "--"])
        mwtest.eq(nofile(mw.pid), (4096, 4096), "mailward's open files limit (soft, hard)")
        got = [x for x in outcheck.log_events(mw, "nofile")]
        mwtest.eq([(x.get("limit"), x.get("needed")) for x in got], [("4096", "264")],
                  "event=nofile lines")
        mwtest.check(" info: - event=nofile " in mw.log(), "event=nofile not at info: %s"
                     % mw.log()[-2000:])
        mw.stop()

        print("== 2. out of descriptors", flush=True)
        prom = mwtest.metrics_file(env)
        mw = env.mailward(listeners=ls, globals={"metrics_file": prom},
                          wrap=["prlimit", "--nofile=48:48", "--"])
        got = [(x.get("limit"), x.get("needed")) for x in outcheck.log_events(mw, "nofile")]
        mwtest.eq(got, [("48", "264")], "event=nofile lines")
        mwtest.check(" warning: - event=nofile " in mw.log(), "event=nofile not a warning: %s"
                     % mw.log()[-2000:])
        socks = []
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=10)
            socks.append(s)
        greeted = refused = closed = 0
        for s in socks:
            g = mwtest.first_line(s)
            if g.startswith(b"220 "):
                greeted += 1
            elif g.startswith(b"421 ") and b"out of file descriptors" in g:
                refused += 1
            elif g == b"":
                closed += 1
            else:
                mwtest.fail("unexpected greeting: %r" % g)
        print("greeted %d, refused %d, closed unanswered %d" % (greeted, refused, closed))
        mwtest.check(greeted > 0 and refused > 0 and greeted + refused == 60,
                     "60 clients: %d greeted, %d refused, %d closed unanswered"
                     % (greeted, refused, closed))
        lines = [x for x in outcheck.log_events(mw, "refused")
                 if "out of file descriptors" in x.get("reason", "")]
        mwtest.eq(len(lines), refused, "event=refused lines for the descriptors")
        for s in socks:
            s.close()

        # The listener still accepts once descriptors are free again.
        late = []  # 421s before mailward saw the clients go (a loaded machine)

        def fresh():
            try:
                c = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname="client.test",
                                 timeout=10)
            except smtplib.SMTPConnectError as e:
                mwtest.check(e.smtp_code == 421 and b"out of file descriptors" in e.smtp_error,
                             "unexpected refusal: %r" % (e,))
                late.append(e)
                return None
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                return None
            return c
        c = mwtest.wait_for(fresh, 10)
        mwtest.check(c, "no greeting after the clients left")
        c.starttls(context=ssl.create_default_context(cafile=os.path.join(env.certs, "ca.pem")))
        mwtest.eq(c.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "refused recipients")
        c.quit()
        mwtest.eq(len(backend.wait_messages(1, 10)), 1, "messages at the backend")
        time.sleep(0.2)
        mw.stop()
        m = mwtest.read_metrics(prom)
        mwtest.eq([m.get('mailward_sessions_refused_total{reason="%s"}' % r)
                   for r in ("file_descriptors", "max_sessions", "max_per_client")],
                  [float(refused + len(late)), 0.0, 0.0],
                  "sessions refused in the metrics, by reason")
        mwtest.eq(m.get("mailward_sessions_total"), float(61 + len(late)),
                  "sessions in the metrics")
    print("ok")


if __name__ == "__main__":
    main()
