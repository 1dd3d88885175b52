#!/usr/bin/python3
"""Real Postfix as the backend, client_identity = xclient: a client bound to
127.0.0.2 sends through mailward (STARTTLS) with smtplib.  The message lands
in the Maildir with the body intact; Postfix recorded the client as
[127.0.0.2], not mailward's 127.0.0.1, with the client's own EHLO name (in
the maillog and in the Received: header).

run(identity, ipv6=True) (t_postfix_ipv6.py): the same with mailward
listening on [::1] and the client at ::1, while mailward reaches Postfix
over IPv4: Postfix must record the client as [::1] ("IPv6:::1" in the
Received: header), which it can only have from XCLIENT or the PROXY
header."""

import os
import re
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

IDENTITY = "xclient"
NAME = "mw.test.example"
RCPT = "user@test.example"
BODY = b"hello from 127.0.0.2 via mailward\r\n.leading dot\r\nend\r\n"


def run(identity=IDENTITY, ipv6=False):
    client = "client.%s.test" % identity
    addr, seen, rcvd_addr = (("::1", "[::1]", b"IPv6:::1") if ipv6 else
                             ("127.0.0.2", "[127.0.0.2]", b"[127.0.0.2]"))
    with mwtest.Env("postfix_%s%s" % (identity, "_ipv6" if ipv6 else "")) as env:
        # Postfix takes an IPv6 client address (XCLIENT, PROXY) only with
        # IPv6 among its inet_protocols, even when it listens on 127.0.0.1.
        pf = env.postfix(identity=identity, main={"inet_protocols": "all"} if ipv6 else None)
        smtp = {"accept_tls": "starttls", "hostname": NAME, "client_identity": identity,
                "forward": "127.0.0.1:%d" % pf.port}
        if ipv6:
            smtp["listen"] = "[::1]:%d" % mwtest.free_port()
        mw = env.mailward(listeners={"smtp": smtp})
        msg = (b"From: a@sender.test\r\nTo: %s\r\nSubject: identity %s\r\n"
               b"Message-ID: <%s@mwtest>\r\n\r\n" % (RCPT.encode(), identity.encode(),
                                                    identity.encode()) + BODY)
        s = smtplib.SMTP(mw.addr("smtp")[0], mw.port("smtp"), local_hostname=client,
                         timeout=30, source_address=(addr, 0))
        s.ehlo()
        s.starttls(context=mwtest.ssl_client_context(env))
        s.ehlo()
        mwtest.eq(s.sendmail("a@sender.test", [RCPT], msg), {}, "recipients refused")
        s.quit()

        got = pf.wait_mailbox(RCPT, 1, 30)
        mwtest.check(len(got) == 1, "Maildir of %s has %d messages; maillog:\n%s"
                     % (RCPT, len(got), pf.maillog()))
        text = got[0]
        print(text.decode("utf-8", "replace"))
        mwtest.check(text.endswith(BODY.replace(b"\r\n", b"\n")), "message body changed")
        rcvd = re.search(rb"^Received: from (\S+) \(([^)]*)\)", text, re.M)
        mwtest.check(rcvd is not None, "no Received: header")
        mwtest.eq(rcvd.group(1).decode(), client, "HELO name in Postfix's Received: header")
        mwtest.check(rcvd_addr in rcvd.group(2),
                     "Received: header names %r, not %r" % (rcvd.group(2), rcvd_addr))

        mwtest.check(pf.wait_maillog("helo=<%s>" % client, 10), "no helo=<%s> in the maillog"
                     % client)
        log = pf.maillog()
        print(log)
        clients = re.findall(r": client=(\S+)", log)
        mwtest.eq(len(clients), 1, "queued messages in the maillog (client= lines)")
        mwtest.check(clients[0].endswith(seen),
                     "Postfix saw the client as %s, not %s" % (clients[0], seen))
        info = [l for l in log.splitlines() if "info: DATA from" in l]
        mwtest.check(info and seen in info[0] and "helo=<%s>" % client in info[0],
                     "the maillog's record of the transaction: %r" % info)
        mwtest.check("127.0.0.1" not in info[0], "the transaction is logged with 127.0.0.1")
        if identity == "proxy":
            # Every connection of mailward's to Postfix (its capability probes
            # too) must start with a PROXY header.
            bad = [l for l in log.splitlines() if "warning:" in l and
                   ("haproxy" in l or "proxy" in l.lower())]
            mwtest.check(not bad, "Postfix complained about PROXY headers: %r" % bad)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    run()
