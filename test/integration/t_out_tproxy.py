#!/usr/bin/python3
"""Outbound, transparent by TPROXY instead of a redirect: the sender namespace
is a router between a "lan" namespace (203.0.113.2 and 2001:db8:200::2,
default routes through the router) and the destinations; nftables in the
router (README's recipe, net.tproxy(): an inet table, so IPv4 and IPv6, the
policy routing for both, and the lan's port 25 dropped where it would be
forwarded) hands the lan's TCP to port 25 to mailward's outbound listener
([::]:10025, one socket for both families, forward = original-dst,
forward_tls = policy) with `tproxy to :10025`. There is no NAT entry: the
destination is the accepted socket's local address (IP_TRANSPARENT listener).

Checked: smtplib in the lan connecting to 192.0.2.10:25 gets the destination's
own banner through mailward (log: event=outbound server=192.0.2.10:25); the
message arrives there over TLS, byte-exact; a `secure` domain at 192.0.2.11,
whose certificate nobody trusts, gets 451 4.7.5 with no envelope byte at that
destination; the same delivery to 2001:db8::10 over IPv6 goes through
mailward too (event=outbound server=[2001:db8::10]:25), where a recipe for
IPv4 alone let it pass in clear text; a client connecting to mailward's own
address (no TPROXY, no redirect) still gets 421 4.3.0; mailward exits
cleanly. Skipped (77) when the
kernel cannot do nftables TPROXY in a namespace."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

CLIENT = "mta.lan.test"
POLICY = "secure.test secure\n"
PORT = 10025
MSG = (b"From: alice@lan.test\r\nTo: bob@secure.test\r\nSubject: through TPROXY\r\n"
       b"\r\n.leading dot\r\nline two\r\n")


def main():
    with mwtest.Env("out_tproxy") as env:
        net = env.netns(hosts=("192.0.2.10", "192.0.2.11", "2001:db8::10"))
        lan = net.add_lan()
        ruleset = net.tproxy(PORT)
        mwtest.check("tproxy" in ruleset, "tproxy rule: %s" % ruleset)
        good = net.cert("mx.secure.test")
        bad = net.cert("mx.secure.test", kind="untrusted")
        dest = net.dest("192.0.2.10", tls="starttls", cert=good, hostname="mx.dest.test")
        dest_bad = net.dest("192.0.2.11", tls="starttls", cert=bad, hostname="mx.bad.test")
        dest6 = net.dest("2001:db8::10", tls="starttls", cert=good, hostname="mx6.dest.test")
        mw = net.outbound(policy=POLICY, default_level="encrypt", port=PORT,
                          redirect=False, listen="[::]:%d" % PORT)
        mwtest.check("event=no_transparent" not in mw.log(),
                     "IP_TRANSPARENT was not set: %s" % mw.log())

        # 1. Delivery through TPROXY.
        s = net.smtp("192.0.2.10", 25, local_hostname=CLIENT, ns=lan)
        mwtest.eq(s.banner[0], 220, "greeting code")
        mwtest.check(s.banner[1] == b"mx.dest.test Python SMTP %s"
                     % mwtest.aiosmtpd_version().encode(),
                     "greeting is not the destination's own: %r" % (s.banner,))
        code, caps = s.ehlo()
        mwtest.eq(code, 250, "EHLO")
        mwtest.check(not s.has_extn("starttls"), "STARTTLS offered to the client: %r" % caps)
        t = mwtest.transaction(s, "alice@lan.test", ["bob@secure.test"], MSG)
        mwtest.eq([t["mail"][0], t["rcpt"][0][0], t["data"][0]], [250, 250, 250],
                  "MAIL, RCPT, end of data (%r)" % (t,))
        s.quit()
        mwtest.check("event=outbound server=192.0.2.10:25" in mw.log(),
                     "no event=outbound server=192.0.2.10:25 in mailward's log:\n%s" % mw.log())
        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination")
        mwtest.eq(msgs[0].data, MSG, "message bytes at the destination")
        mwtest.eq(msgs[0].rcpt_tos, ["bob@secure.test"], "RCPT TO at the destination")
        mwtest.eq(msgs[0].tls, True, "message arrived over TLS")
        mwtest.eq(msgs[0].helo, CLIENT, "EHLO name the destination saw")
        dest.check_idle()

        # 1b. The same over IPv6.
        s = net.smtp("2001:db8::10", 25, local_hostname=CLIENT, ns=lan)
        mwtest.check(s.banner[1].startswith(b"mx6.dest.test "),
                     "greeting is not 2001:db8::10's own: %r" % (s.banner,))
        s.ehlo()
        t = mwtest.transaction(s, "alice@lan.test", ["bob@secure.test"], MSG)
        mwtest.eq([t["mail"][0], t["rcpt"][0][0], t["data"][0]], [250, 250, 250],
                  "MAIL, RCPT, end of data over IPv6 (%r)" % (t,))
        s.quit()
        mwtest.check("event=outbound server=[2001:db8::10]:25" in mw.log(),
                     "IPv6 did not go through mailward:\n%s" % mw.log()[-3000:])
        msgs = dest6.wait_messages(1, 10)
        mwtest.eq([(m.data, m.tls) for m in msgs], [(MSG, True)],
                  "messages at 2001:db8::10 (bytes, TLS)")

        # 2. A secure domain behind an untrusted certificate: refused, nothing sent.
        s = net.smtp("192.0.2.11", 25, local_hostname=CLIENT, ns=lan)
        mwtest.eq(s.banner[0], 220, "greeting code (192.0.2.11)")
        mwtest.check(s.banner[1].startswith(b"mx.bad.test "),
                     "greeting is not 192.0.2.11's own: %r" % (s.banner,))
        s.ehlo()
        code, text = s.mail("alice@lan.test")
        mwtest.eq(code, 250, "MAIL (held)")
        code, text = s.rcpt("bob@secure.test")
        mwtest.eq(code, 451, "RCPT bob@secure.test behind an untrusted certificate (%r)" % text)
        mwtest.check(text.startswith(b"4.7.5 "), "RCPT reply is not 4.7.5: %r" % text)
        s.quit()
        mwtest.check("event=outbound server=192.0.2.11:25" in mw.log(),
                     "no event=outbound server=192.0.2.11:25 in mailward's log")
        dest_bad.check_idle()
        mwtest.eq(dest_bad.messages, [], "messages at 192.0.2.11")
        verbs = [c.split(" ")[0].upper() for c in dest_bad.command_strings()]
        mwtest.check(not set(verbs) & {"MAIL", "RCPT", "DATA"},
                     "envelope reached 192.0.2.11: %r" % verbs)
        got = mwtest.wait_alerts(mw, event="certificate_invalid", domain="secure.test")
        mwtest.eq(len(got), 1, "certificate_invalid alerts (all: %r)" % mw.alerts())
        mwtest.eq(got[0].get("server"), "192.0.2.11:25", "alert server")

        # 3. Straight to mailward's own address (no TPROXY, no NAT): no destination.
        s = net.smtp(net.LAN_ROUTER, PORT, local_hostname=CLIENT, ns=lan)
        mwtest.eq(s.banner[0], 421, "greeting of a direct connection (%r)" % (s.banner,))
        mwtest.check(s.banner[1].startswith(b"4.3.0 "),
                     "direct connection not refused with 4.3.0: %r" % (s.banner,))
        s.close()
        mwtest.check("event=no_original_dst" in mw.log(), "no event=no_original_dst logged")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
