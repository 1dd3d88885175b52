#!/usr/bin/python3
"""Outbound: a connection made straight to the outbound listener, with the
redirect loaded (scripts/nft-redirect's rules: nftables' nat, so conntrack
tracks every connection), is refused and never relayed to mailward itself.

With conntrack on, SO_ORIGINAL_DST answers for a connection that was never
redirected too, with the listener's own address; an earlier build took
that as the destination, connected to itself about 20 times (until
max_per_client) and answered 421 4.7.0 "too many connections". Now, over
IPv4 and IPv6 (listen = 127.0.0.1:10025 [::1]:10025): 421 4.3.0 at once,
event=no_original_dst, and no event=outbound naming the listener."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

PORT = 10025


def main():
    with mwtest.Env("out_direct") as env:
        net = env.netns()
        net.dest("192.0.2.10", tls="starttls")
        mw = net.outbound(port=PORT, listen="127.0.0.1:%d [::1]:%d" % (PORT, PORT))
        for host, shown in (("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")):
            s = net.connect(host, PORT, timeout=10)
            s.settimeout(10)
            banner = s.recv(512)
            s.close()
            print("straight to %s:%d: %r" % (shown, PORT, banner), flush=True)
            mwtest.check(banner.startswith(b"421 4.3.0"),
                         "a direct connection to %s got %r, not 421 4.3.0:\n%s"
                         % (shown, banner, mw.log()[-3000:]))
        time.sleep(0.5)
        log = mw.log()
        mwtest.eq(log.count("event=no_original_dst"), 2, "no_original_dst lines")
        for shown in ("127.0.0.1", "[::1]"):
            mwtest.eq(log.count("event=outbound server=%s:%d" % (shown, PORT)), 0,
                      "sessions relayed to the listener %s itself" % shown)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
