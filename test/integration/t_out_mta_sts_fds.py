#!/usr/bin/python3
"""Outbound MTA-STS out of descriptors: a policy that cannot be fetched for
want of a descriptor here defers the recipient; it is not "no policy".

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS, certificate for mx.other.test (the
                  test CA): trusted, but not a name the policy allows
  192.0.2.44:443  the policy host mta-sts.fresh.test (Python's http.server
                  over ssl)
  192.0.2.53:53   dnsmasq: _mta-sts.fresh.test TXT and the policy host's
                  address; the sender's resolver

fresh.test publishes enforce, mx: mx.fresh.test. mailward runs under
prlimit with 80 descriptors (its last 16 are the reserve, which connections
to servers never take): mta_sts = yes, default_level may (without the
policy, mail to fresh.test would be delivered to mx.other.test), and a
second listener "in" (STARTTLS, its backend never used) whose clients each
hold one descriptor.

1. An outbound session reaches the destination and sends MAIL FROM.
2. Clients connect to "in" until one is refused with "421 ... out of file
   descriptors": every descriptor below the reserve is in use.
3. RCPT TO bob@fresh.test: the TXT record is found, but the connection to
   the policy host would need a reserved descriptor. The RCPT gets "451
   4.3.2 ... MTA-STS policy not fetched"; the log says event=mta_sts_failed
   with action "recipients deferred for now" and event=rcpt_deferred; the
   policy host got no request. (Taking the failure as "no policy" would
   have given 250 and sent the mail to mx.other.test.)
4. The "in" clients leave. 3 s later (STS_LOCAL_SECS) the same RCPT gets
   451 4.7.5 certificate-host-mismatch: the policy was fetched (one GET);
   the failure had not been cached. Nothing reaches the destination."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

DEST, WEB, DNS = "192.0.2.10", "192.0.2.44", "192.0.2.53"
POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.fresh.test\r\nmax_age: 86400\r\n"
LIMIT = 80
IN_PORT = 10026



def main():
    with mwtest.Env("out_mta_sts_fds") as env:
        net = env.netns(hosts=(DEST, WEB, DNS))
        net.dnsmasq(DNS, txt={"_mta-sts.fresh.test": "v=STSv1; id=fresh1;"},
                    hosts={"mta-sts.fresh.test": WEB})
        net.resolver(DNS)
        web = net.https(WEB, net.cert("mta-sts.fresh.test"),
                        {"mta-sts.fresh.test": (200, "text/plain", POLICY)})
        dest = net.dest(DEST, tls="starttls", cert=net.cert("mx.other.test"))
        more = {"in": {"listen": "127.0.0.1:%d" % IN_PORT, "forward": "127.0.0.1:9",
                       "max_sessions": 200, "max_per_client": 200}}
        mw = net.outbound(default_level="may", mta_sts="yes", more=more,
                          wrap=["prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT), "--"])

        print("== 1. an outbound session", flush=True)
        s = net.smtp(DEST)
        s.ehlo("client.sender.test")
        mwtest.eq(s.mail(outcheck.FROM)[0], 250, "MAIL FROM")

        print("== 2. clients on the other listener until the reserve", flush=True)
        held = []
        with net.inside():
            for _ in range(LIMIT):
                c = socket.create_connection(("127.0.0.1", IN_PORT), timeout=10)
                g = mwtest.first_line(c)
                if g.startswith(b"220 "):
                    held.append(c)
                    continue
                c.close()
                mwtest.check(g.startswith(b"421 ") and b"out of file descriptors" in g,
                             "after %d clients: %r" % (len(held), g))
                break
            else:
                mwtest.fail("%d clients and no 421" % len(held))
        print("%d clients hold descriptors" % len(held), flush=True)

        print("== 3. RCPT TO a domain whose policy cannot be fetched now", flush=True)
        code, text = s.rcpt("bob@fresh.test")
        print("RCPT: %d %r" % (code, text), flush=True)
        mwtest.check(code == 451 and text.startswith(b"4.3.2 ") and
                     b"MTA-STS policy not fetched" in text,
                     "RCPT TO bob@fresh.test while out of descriptors: %d %r" % (code, text))
        failed = [x for x in outcheck.log_events(mw, "mta_sts_failed")]
        mwtest.eq([x.get("action") for x in failed], ["recipients deferred for now"],
                  "event=mta_sts_failed actions")
        mwtest.eq(len(outcheck.log_events(mw, "rcpt_deferred")), 1,
                  "event=rcpt_deferred lines")
        mwtest.eq(web.gets("mta-sts.fresh.test"), [], "GETs while out of descriptors")

        print("== 4. descriptors free again", flush=True)
        for c in held:
            c.close()
        time.sleep(3)
        code, text = s.rcpt("bob@fresh.test")
        print("RCPT: %d %r" % (code, text), flush=True)
        mwtest.check_deferred((code, text.decode()), "certificate-host-mismatch",
                              "RCPT TO bob@fresh.test afterwards")
        mwtest.eq(len(web.gets("mta-sts.fresh.test")), 1, "GETs")
        s.quit()
        mwtest.eq(dest.messages, [], "messages at the destination")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
