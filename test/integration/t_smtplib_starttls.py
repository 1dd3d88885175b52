#!/usr/bin/python3
"""Python's smtplib (real software) through a STARTTLS listener: EHLO,
starttls(), EHLO again, sendmail.  The message reaches the backend (aiosmtpd)
byte-exact (leading dots, 8-bit text, an empty line, a long line), with its
envelope, and the backend saw the client's own EHLO name, not mailward's."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"
CLIENT = "client.smtplib.test"
MSG = (b"From: Alice <alice@sender.test>\r\nTo: bob@rcpt.test\r\n"
       b"Subject: smtplib over STARTTLS\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
       b".a line with a leading dot\r\n..two dots\r\n.\tdot tab\r\n\r\n"
       b"gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n" + b"x" * 990 + b"\r\nend\r\n")


def main():
    with mwtest.Env("smtplib_starttls") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "require_tls": "yes", "hostname": NAME,
            "forward": "127.0.0.1:%d" % be.port}})
        s = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname=CLIENT, timeout=20)
        code, banner = s.ehlo()
        mwtest.eq(code, 250, "EHLO before TLS")
        mwtest.check(s.has_extn("starttls"), "STARTTLS not offered: %r" % banner)
        code, _ = s.starttls(context=mwtest.ssl_client_context(env))
        mwtest.eq(code, 220, "STARTTLS")
        print("TLS: %s %s" % (s.sock.version(), s.sock.cipher()[0]))
        mwtest.check(s.sock.version() in ("TLSv1.3", "TLSv1.2"), "TLS version %s" % s.sock.version())
        code, caps = s.ehlo()
        mwtest.eq(code, 250, "EHLO after TLS")
        mwtest.check(not s.has_extn("starttls"), "STARTTLS offered after TLS: %r" % caps)
        refused = s.sendmail("alice@sender.test", ["bob@rcpt.test", "carol@rcpt.test"], MSG)
        mwtest.eq(refused, {}, "recipients refused")
        s.quit()

        msgs = be.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the backend")
        m = msgs[0]
        print(m)
        mwtest.eq(m.data, MSG, "message bytes at the backend")
        mwtest.eq(m.mail_from, "alice@sender.test", "MAIL FROM at the backend")
        mwtest.eq(m.rcpt_tos, ["bob@rcpt.test", "carol@rcpt.test"], "RCPT TO at the backend")
        mwtest.eq(m.helo, CLIENT, "EHLO name the backend saw for the session")
        ehlos = [c for c in be.command_strings() if c.upper().startswith(("EHLO ", "HELO "))]
        print("backend EHLO/HELO lines: %r" % ehlos)
        mwtest.check(("EHLO " + CLIENT).lower() in [e.lower() for e in ehlos],
                     "the backend never saw EHLO %s: %r" % (CLIENT, ehlos))
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
