#!/usr/bin/python3
"""Monitor mode (require_tls = no): a plaintext session is relayed, byte-exact,
and reported with exactly one plaintext_relayed alert per session, even when
the session carries two messages."""

import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import wait_alerts  # noqa: E402

NAME = "mw.test.example"


def message(n):
    return (b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: monitor %d\r\n\r\n"
            b"plain text body %d\r\n..a line that starts with a dot\r\nend\r\n" % (n, n))


def main():
    with mwtest.Env("monitor_mode") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "require_tls": "no", "hostname": NAME,
            "forward": "127.0.0.1:%d" % be.port}})
        s = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname="plain.test", timeout=15)
        s.ehlo()
        for n in (1, 2):
            refused = s.sendmail("a@sender.test", ["b@rcpt.test"], message(n))
            mwtest.eq(refused, {}, "refused recipients")
        s.quit()
        msgs = be.wait_messages(2, 10)
        mwtest.eq(len(msgs), 2, "messages at the backend")
        for n, m in zip((1, 2), msgs):
            # smtplib dot-stuffs, aiosmtpd un-stuffs: the bytes must come out as they went in.
            mwtest.eq(m.data, message(n), "message %d bytes" % n)
            mwtest.eq(m.mail_from, "a@sender.test", "MAIL FROM")
            mwtest.eq(list(m.rcpt_tos), ["b@rcpt.test"], "RCPT TO")
        alerts = wait_alerts(mw, "plaintext_relayed", 1)
        time.sleep(0.5)
        alerts = wait_alerts(mw, "plaintext_relayed", 1)
        mwtest.eq(len(alerts), 1, "plaintext_relayed alerts for one session: %r" % alerts)
        mwtest.eq(alerts[0].get("action"), "relayed", "alert action")
        mwtest.eq(alerts[0].get("severity"), "warning", "alert severity")
        mwtest.check(not wait_alerts(mw, "plaintext_refused", 0, 0), "plaintext_refused in monitor mode")
        mw.stop()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
