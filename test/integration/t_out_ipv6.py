#!/usr/bin/python3
"""Outbound over IPv6, set up as README says: scripts/nft-redirect's
default family (inet) sends IPv6 connections to port 25 to [::1]:PORT, so
the outbound listener listens on [::1] beside 127.0.0.1 (one listener,
two addresses).

The test bed: destinations at 2001:db8::10 (aiosmtpd with STARTTLS, a
certificate for mx.provider.test only) and 2001:db8::11 (the STARTTLS-masking fixture
in front of an aiosmtpd with STARTTLS), and 192.0.2.10 (aiosmtpd with
STARTTLS) for IPv4; the sender has 2001:db8:100::1 and 198.51.100.1.
mailward (workers = 2) has [out] with listen = 127.0.0.1:10025
[::1]:10025 and forward_source = 198.51.100.9, a second address of the
sender (policy: v6.test verify, masked.test encrypt); it logs
event=listening for each.

1. IPv6: a message to bob@v6.test through [2001:db8::10]:25 is delivered
   over TLS, accepted on [::1]:10025 (its client an IPv6 address), with
   the original destination [2001:db8::10]:25 (SO_ORIGINAL_DST for IPv6),
   and verify passes only because the certificate is checked against the
   MX host found for that address (the test's dnsmasq: v6.test MX
   mx.provider.test, which has AAAA 2001:db8::10; the certificate names
   nothing under v6.test).
2. IPv6, STARTTLS masked at 2001:db8::11: 451 4.7.5 starttls-not-supported,
   an alert naming [2001:db8::11]:25, nothing of the envelope delivered.
3. IPv4 through the same listener, at the same time: delivered, from
   198.51.100.9; the IPv6 delivery of 1 came from the sender's own IPv6
   address, unbound (forward_source is IPv4).
4. With listen = 127.0.0.1:10025 alone, the IPv6 connection is refused:
   why README lists both addresses."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST6, MASKED6, DEST4, RES = "2001:db8::10", "2001:db8::11", "192.0.2.10", "192.0.2.53"
PORT = 10025
SOURCE4 = "198.51.100.9"    # a second sender address, mailward's forward_source
POLICY = "v6.test verify\nmasked.test encrypt\n"


def listeners(net, v6=True, source=None):
    common = {"accept_tls": "none", "require_tls": "no", "forward": "original-dst",
              "forward_tls": "policy", "ca_file": os.path.join(net.env.certs, "ca.pem"),
              "policy": net.env.path("policy"), "default_level": "encrypt",
              "forward_source": source}
    listen = "127.0.0.1:%d" % PORT + (" [::1]:%d" % PORT if v6 else "")
    return {"out": dict(common, listen=listen)}


def main():
    with mwtest.Env("out_ipv6") as env:
        net = env.netns(hosts=(DEST6, MASKED6, DEST4, RES))
        net.dnsmasq(RES, hosts={"mx.provider.test": DEST6}, mx={"v6.test": "mx.provider.test"})
        net.resolver(RES)
        cert = net.cert("mx.provider.test")
        dest6 = net.dest(DEST6, tls="starttls", cert=cert, hostname="mx.provider.test")
        behind = net.dest(MASKED6, tls="starttls", listen="127.0.0.1", port=2525)
        net.stripper(MASKED6, to=("127.0.0.1", 2525), mode="mask")
        dest4 = net.dest(DEST4, tls="starttls")
        # SOURCE4 on the sender's link to DEST4, and the way back to it.
        net._ip(net.sender, "addr", "add", SOURCE4 + "/32", "dev",
                "d%d" % net.hosts.index(DEST4))
        net._ip(net.ns_of(DEST4), "route", "add", SOURCE4 + "/32", "dev", "eth0")
        with open(env.path("policy"), "w") as f:
            f.write(POLICY)
        state = env.path("state")
        os.makedirs(state)
        mwtest._chown(state, "nobody")
        ruleset = net.redirect(PORT)
        mwtest.check("ip6 daddr != ::1 tcp dport 25 redirect to :%d" % PORT in ruleset,
                     "the IPv6 redirect rule: %s" % ruleset)
        # Two workers: each has a socket per address (fds[worker * 2 + address]).
        mw = env.mailward(listeners=listeners(net, source=SOURCE4),
                          globals={"state_dir": state, "workers": 2},
                          netns=net.sender)
        mwtest.eq(sorted(x.get("listen") for x in outcheck.log_events(mw, "listening")),
                  ["127.0.0.1:%d" % PORT, "[::1]:%d" % PORT], "event=listening lines")

        print("== 1. IPv6, delivered", flush=True)
        outcheck.delivered(net, mw, dest6, ["bob@v6.test"], host=DEST6)
        lines = [x for x in outcheck.log_events(mw, "outbound")
                 if x.get("server") == "[%s]:25" % DEST6]
        mwtest.check(lines, "no event=outbound line for [%s]:25; log:\n%s"
                     % (DEST6, mw.log()[-3000:]))
        # Its client is the sender's IPv6 address: it came in on [::1].
        mwtest.check("event=connect listener=out client=[%s]:" % net.SENDER_ADDR6 in mw.log(),
                     "no IPv6 session; log:\n%s" % mw.log()[-3000:])
        m = dest6.messages[-1]
        mwtest.eq(m.peer[0], net.SENDER_ADDR6, "the destination's peer (mailward, from the "
                  "sender's IPv6 address: forward_source, IPv4, binds no IPv6 connection)")

        print("== 2. IPv6, STARTTLS masked", flush=True)
        n = len(mwtest.find_alerts(mw, domain="masked.test"))
        outcheck.refused(net, mw, behind, "bob@masked.test", "starttls-not-supported",
                         host=MASKED6)
        got = mwtest.wait_alerts(mw, n=n + 1, domain="masked.test")
        mwtest.eq([a.get("server") for a in got[n:]], ["[%s]:25" % MASKED6],
                  "the alert's server")

        print("== 3. IPv4 beside it", flush=True)
        outcheck.delivered(net, mw, dest4, ["carol@v4.test"], host=DEST4)
        mwtest.eq(dest4.messages[-1].peer[0], SOURCE4,
                  "the IPv4 destination's peer (forward_source)")
        mw.stop()

        print("== 4. without [::1] in listen", flush=True)
        mw = env.mailward(listeners=listeners(net, v6=False), globals={"state_dir": state},
                          netns=net.sender)
        try:
            net.connect(DEST6, 25, timeout=5).close()
            mwtest.fail("an IPv6 connection was accepted with no listener on [::1]:%d" % PORT)
        except ConnectionRefusedError:
            print("refused, as expected")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
