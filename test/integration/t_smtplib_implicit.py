#!/usr/bin/python3
"""Python's smtplib.SMTP_SSL (real software) to an implicit-TLS listener
(RFC 8314): TLS from the first byte, the certificate verifies against the
test CA for 127.0.0.1, no STARTTLS offered, the message arrives byte-exact
with the client's EHLO name."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"
CLIENT = "client.smtps.test"
MSG = (b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: implicit TLS\r\n\r\n"
       b"hello over port 465 style TLS\r\n.leading dot\r\n")


def main():
    with mwtest.Env("smtplib_implicit") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtps": {
            "accept_tls": "implicit", "hostname": NAME, "forward": "127.0.0.1:%d" % be.port}})
        s = smtplib.SMTP_SSL("127.0.0.1", mw.port("smtps"), local_hostname=CLIENT, timeout=20,
                             context=mwtest.ssl_client_context(env))
        print("TLS: %s %s" % (s.sock.version(), s.sock.cipher()[0]))
        mwtest.eq(s.sock.version(), "TLSv1.3", "TLS version")
        code, caps = s.ehlo()
        mwtest.eq(code, 250, "EHLO")
        mwtest.check(not s.has_extn("starttls"), "STARTTLS offered inside implicit TLS: %r" % caps)
        mwtest.check(caps.split(b"\n")[0].strip() == NAME.encode(),
                     "EHLO reply does not name %s: %r" % (NAME, caps))
        mwtest.eq(s.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "recipients refused")
        s.quit()
        msgs = be.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the backend")
        mwtest.eq(msgs[0].data, MSG, "message bytes at the backend")
        mwtest.eq(msgs[0].helo, CLIENT, "EHLO name the backend saw")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
