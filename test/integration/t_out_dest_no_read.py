#!/usr/bin/python3
"""Outbound: a destination that stops reading in the middle of a message is
met with backpressure, not buffering (invariant 4), and the session ends
(invariant 5).

hostilemx (a test fixture) at 192.0.2.10:25 takes the envelope and DATA
(354), shrinks its receive buffer and reads nothing more. A raw client
(the sending MTA) tries to send a 200 MB message as fast as it can; the
outbound listener has timeout_data = 5. mailward's resident memory must
grow by less than 8 MB meanwhile (it holds at most its high-water mark
towards the destination, then stops reading the client), and the client
must get 421 4.4.2 within 30 s, the message not delivered.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from hostilemx import HostileMX  # noqa: E402
from rawsmtp import Client  # noqa: E402


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def handler(p):
    p.send(b"220 mx.dest.test ESMTP\r\n")
    p.ehlo([b"PIPELINING", b"8BITMIME"])
    p.envelope()
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    while not p.mx.stopping:
        time.sleep(0.2)


def main():
    with mwtest.Env("out_dest_no_read") as env:
        net = env.netns()
        HostileMX(net, handler)
        mw = net.outbound(policy="may.test may\n", default_level="may", timeout_data=5)
        with net.inside():
            c = Client(25, host="192.0.2.10", timeout=30)
        mwtest.eq(c.reply().code, 220, "banner")
        mwtest.eq(c.cmd("EHLO client.sender.test").code, 250, "EHLO")
        mwtest.eq(c.cmd("MAIL FROM:<a@sender.test>").code, 250, "MAIL")
        mwtest.eq(c.cmd("RCPT TO:<b@may.test>").code, 250, "RCPT")
        mwtest.eq(c.cmd("DATA").code, 354, "DATA")
        before = rss_kb(mw.pid)
        sent = [0]

        def pump():
            blob = (b"x" * 998 + b"\r\n") * 1000
            try:
                for _ in range(200):
                    c.sock.sendall(blob)
                    sent[0] += len(blob)
            except OSError:
                pass
        t0 = time.monotonic()
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        peak = before
        while t.is_alive() and time.monotonic() - t0 < 30:
            peak = max(peak, rss_kb(mw.pid))
            time.sleep(0.2)
        print("sent %d bytes; mailward's RSS %d kB before, %d kB at most"
              % (sent[0], before, peak))
        mwtest.check(peak - before < 8 * 1024, "mailward grew by %d kB" % (peak - before))
        mwtest.check(sent[0] < 200 * 1000 * 1000, "the whole message went somewhere")
        r = c.reply()
        print("reply: %r after %.1f s" % (r, time.monotonic() - t0))
        mwtest.check(r.starts("421 4.4.2"), "got %r, not 421 4.4.2" % r)
        mwtest.check(time.monotonic() - t0 < 30, "the session outlived its timeout")
        mwtest.check("event=delivered" not in mw.log(), "a delivery was logged")
    print("ok")


if __name__ == "__main__":
    main()
