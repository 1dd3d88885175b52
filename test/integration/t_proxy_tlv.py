#!/usr/bin/python3
"""PROXY protocol v2: the backend learns the client's address and its TLS.

The backend is aiosmtpd (real software) with its own PROXY protocol parser.
A client on 127.0.0.2 sends a message through mailward's STARTTLS listener
with client_identity = proxy; aiosmtpd's parsed header must name 127.0.0.2
and its port as the source, mailward's listening address as the
destination, and carry PP2_TYPE_SSL with the client-used-TLS flag, the TLS
version and the cipher that the client really negotiated.

Then behind a balancer (accept_proxy) whose PROXY v1 header pairs an
IPv4-mapped client with an IPv6 destination (TCP6 ::ffff:192.0.2.9
2001:db8::25): mailward logs the client as IPv4, and the v2 header it
sends on is IPv6 with the client mapped again (one family for both ends).
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

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

        # Behind a balancer whose PROXY v1 header pairs an IPv4-mapped client
        # with an IPv6 destination: the client is IPv4 to mailward, and the
        # header it sends on keeps one family (IPv6, the client mapped again).
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "forward": "127.0.0.1:%d" % be.port,
            "client_identity": "proxy", "accept_proxy": "yes", "proxy_from": "127.0.0.1"}})
        c = Client(mw.port("smtp"))
        c.send(b"PROXY TCP6 ::ffff:192.0.2.9 2001:db8::25 40000 25\r\n")
        mwtest.eq(c.reply().code, 220, "greeting after the PROXY v1 header")
        c.cmd("EHLO client.test")
        c.starttls(mwtest.ssl_client_context(env))
        c.cmd("EHLO client.test")
        for line, code in (("MAIL FROM:<a@sender.test>", 250), ("RCPT TO:<b@rcpt.test>", 250),
                           ("DATA", 354), (MSG + b".\r\n", 250)):
            r = c.cmd(line)
            mwtest.eq(r.code, code, "%r answered %r" % (line[:20], r))
        c.close()
        p = be.wait_messages(2, 10)[-1].proxy
        mwtest.check(p is not None, "the backend got no PROXY header")
        print("PROXY (mixed pair): src=%s:%s dst=%s:%s" % (p.src_addr, p.src_port, p.dst_addr,
                                                           p.dst_port))
        mwtest.eq((str(p.src_addr), p.src_port, str(p.dst_addr), p.dst_port),
                  ("::ffff:c000:209", 40000, "2001:db8::25", 25),
                  "the header for a mapped client and an IPv6 destination")
        mwtest.check("client=192.0.2.9:40000" in mw.log(),
                     "mailward did not take the client as IPv4:\n%s" % mw.log()[-3000:])
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
