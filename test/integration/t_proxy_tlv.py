#!/usr/bin/python3
"""PROXY protocol v2: the backend learns the client's address and its TLS.

The backend is aiosmtpd (real software) with its own PROXY protocol parser.
A client on 127.0.0.2 sends a message through mailward's STARTTLS listener
with client_identity = proxy; aiosmtpd's parsed header must name 127.0.0.2
and its port as the source, mailward's listening address as the
destination, and carry PP2_TYPE_SSL with the client-used-TLS flag, the TLS
version and the cipher that the client really negotiated.
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: proxy v2\r\n\r\nhello\r\n"


def main():
    with mwtest.Env("proxy_tlv") as env:
        be = env.recorder(proxy=True)
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "forward": "127.0.0.1:%d" % be.port,
            "client_identity": "proxy"}})
        s = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname="client.test",
                         source_address=("127.0.0.2", 0), timeout=20)
        s.starttls(context=mwtest.ssl_client_context(env))
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        client_port = s.sock.getsockname()[1]
        s.ehlo("client.test")
        mwtest.eq(s.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "refused")
        s.quit()
        msgs = be.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the backend")
        p = msgs[0].proxy
        mwtest.check(p is not None, "the backend got no PROXY header")
        print("PROXY: src=%s:%s dst=%s:%s tlv=%r" % (p.src_addr, p.src_port, p.dst_addr,
                                                     p.dst_port, dict(p.tlv or {})))
        mwtest.eq(str(p.src_addr), "127.0.0.2", "source address")
        mwtest.eq(p.src_port, client_port, "source port")
        mwtest.eq((str(p.dst_addr), p.dst_port), ("127.0.0.1", mw.port("smtp")),
                  "destination: mailward's listener")
        tlv = p.tlv
        mwtest.check(tlv is not None and tlv.get("SSL") is True,
                     "no PP2_TYPE_SSL with the client-SSL flag: %r" % (tlv,))
        mwtest.eq(tlv.get("SSL_VERSION"), version.encode(), "TLS version in the TLV")
        mwtest.eq(tlv.get("SSL_CIPHER"), cipher.encode(), "cipher in the TLV")
        mwtest.eq(msgs[0].data, MSG, "message bytes")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
