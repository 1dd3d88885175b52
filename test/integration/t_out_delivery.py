#!/usr/bin/python3
"""Outbound, transparent: smtplib in the sender namespace connects to
192.0.2.10:25; the nftables redirect (scripts/nft-redirect) hands the
connection to mailward's outbound listener (forward = original-dst,
forward_tls = policy), which connects to the real destination (aiosmtpd with
STARTTLS and a certificate for mx.secure.test and mx.verify.test, signed by
the test CA) and upgrades to TLS itself.

Checked: the client gets the destination's own 220 banner and its post-TLS
capabilities without STARTTLS; recipients of a `secure`, a `verify` and an
unlisted domain (default encrypt) are all accepted; the message reaches the
destination byte-exact, once, over TLS, with the client's EHLO name and the
whole envelope; no alert; the learned store in state_dir got written; mailward
exits cleanly."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

CLIENT = "mta.sender.test"
POLICY = "secure.test secure\nverify.test verify\n"
RCPTS = ["bob@secure.test", "carol@verify.test", "dave@other.test"]
MSG = (b"From: alice@sender.test\r\nTo: bob@secure.test\r\nSubject: outbound over TLS\r\n"
       b"\r\n.leading dot\r\nline two\r\n\r\n" + b"y" * 900 + b"\r\nend\r\n")


def main():
    with mwtest.Env("out_delivery") as env:
        net = env.netns()
        cert = net.cert("mx.secure.test", ["mx.secure.test", "mx.verify.test"])
        dest = net.dest("192.0.2.10", tls="starttls", cert=cert, hostname="mx.dest.test")
        mw = net.outbound(policy=POLICY, default_level="encrypt")
        mwtest.check("redirect to :10025" in net.ruleset, "redirect rule: %s" % net.ruleset)

        s = net.smtp("192.0.2.10", 25, local_hostname=CLIENT)
        mwtest.eq(s.banner[0], 220, "greeting code")
        mwtest.check(s.banner[1] == b"mx.dest.test Python SMTP %s" % mwtest.aiosmtpd_version().encode(),
                     "greeting is not the destination's own: %r" % (s.banner,))
        code, caps = s.ehlo()
        mwtest.eq(code, 250, "EHLO")
        print("EHLO reply: %r" % caps)
        mwtest.check(not s.has_extn("starttls"), "STARTTLS offered to the client: %r" % caps)
        mwtest.check(caps.split(b"\n")[0].startswith(b"mx.dest.test"),
                     "EHLO reply is not the destination's: %r" % caps)
        # VRFY names an address: never sent before a recipient has been judged.
        code, text = s.verify("bob@secure.test")
        mwtest.eq(code, 502, "VRFY through the outbound listener (%r)" % text)
        t = mwtest.transaction(s, "alice@sender.test", RCPTS, MSG)
        mwtest.eq(t["mail"][0], 250, "MAIL")
        for r, (code, text) in zip(RCPTS, t["rcpt"]):
            mwtest.eq(code, 250, "RCPT %s (%s)" % (r, text))
        mwtest.eq(t["data"][0], 250, "end of data")
        s.quit()

        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination")
        m = msgs[0]
        mwtest.eq(m.data, MSG, "message bytes at the destination")
        mwtest.eq(m.mail_from, "alice@sender.test", "MAIL FROM at the destination")
        mwtest.eq(m.rcpt_tos, RCPTS, "RCPT TO at the destination")
        mwtest.eq(m.tls, True, "message arrived over TLS")
        mwtest.eq(m.helo, CLIENT, "EHLO name the destination saw")
        dest.check_idle()
        cmds = dest.command_strings()
        print("destination saw: %r" % cmds)
        verbs = [c.split(" ")[0].upper() for c in cmds]
        mwtest.check("STARTTLS" in verbs, "no STARTTLS at the destination: %r" % cmds)
        before_tls = verbs[:verbs.index("STARTTLS")]
        mwtest.check(not set(before_tls) & {"MAIL", "RCPT", "DATA"},
                     "envelope sent before STARTTLS: %r" % cmds)
        mwtest.eq(verbs.count("MAIL"), 1, "MAIL commands at the destination")
        mwtest.check("VRFY" not in verbs, "VRFY reached the destination: %r" % cmds)
        mwtest.eq(dest.sessions, 1, "connections to the destination")
        mwtest.eq(mw.alerts(), [], "alerts")
        mw.stop()
        stored = os.listdir(net.state_dir)
        print("state_dir: %r" % stored)
        mwtest.check(any(os.path.getsize(os.path.join(net.state_dir, f)) > 0 for f in stored),
                     "nothing learned in state_dir %s: %r" % (net.state_dir, stored))
    print("ok")


if __name__ == "__main__":
    main()
