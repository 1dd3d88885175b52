#!/usr/bin/python3
"""forward_verify = yes (the default): the smarthost's certificate must name
the host of `forward`, a wildcard only as the whole left-most label (RFC
6125 section 6.4.3, RFC 9525 section 6.3).

mailward runs in a mount namespace of its own whose /etc/hosts maps
smtp.example.net to 127.0.0.1 (nothing is asked of DNS). One listener per
certificate, each accept_tls = none, forward_tls = implicit, forward =
smtp.example.net:PORT of an aiosmtpd smarthost (implicit TLS) with a
certificate from the test CA naming only:

  smtp.example.net    delivered
  *.example.net       delivered
  *.*.net             refused (wolfSSL's own check accepts it)
  smtp.*.net          refused (likewise)
  s*.example.net      refused (a partial wildcard; wolfSSL accepts it)

Refused: the client's MAIL gets 421 (it keeps the message), the smarthost
sees no SMTP command, and an alert certificate_invalid names the listener."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

CASES = [("smtp.example.net", True), ("*.example.net", True), ("*.*.net", False),
         ("smtp.*.net", False), ("s*.example.net", False)]
MSG = b"From: legacy@lan.test\r\nSubject: names\r\n\r\nbody\r\n"


def main():
    with mwtest.Env("wrap_names") as env:
        hosts = env.path("hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost smtp.example.net\n")
        os.chmod(hosts, 0o644)
        hosts_of, listeners = {}, {}
        for i, (san, _) in enumerate(CASES):
            cert = mwtest.make_leaf_cert(env, "cn%d.invalid" % i, [san])
            hosts_of[i] = env.recorder(tls="implicit", hostname="smarthost.test", cert=cert)
            listeners["w%d" % i] = {
                "accept_tls": "none", "require_tls": "no", "forward_tls": "implicit",
                "forward_ca": os.path.join(env.certs, "ca.pem"), "hostname": "mw.lan.test",
                "forward": "smtp.example.net:%d" % hosts_of[i].port}
        wrap = ["unshare", "-m", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
        mw = env.mailward(listeners=listeners, wrap=wrap)
        for i, (san, good) in enumerate(CASES):
            s = smtplib.SMTP("127.0.0.1", mw.port("w%d" % i), local_hostname="legacy.lan.test",
                             timeout=20)
            s.ehlo()
            code, text = s.mail("legacy@lan.test")
            print("%-18s MAIL -> %d %s" % (san, code, text.decode()), flush=True)
            sh = hosts_of[i]
            if good:
                mwtest.eq(code, 250, "MAIL through the smarthost named %s" % san)
                mwtest.eq(s.rcpt("bob@remote.test")[0], 250, "RCPT (%s)" % san)
                mwtest.eq(s.data(MSG)[0], 250, "DATA (%s)" % san)
                mwtest.eq(len(sh.wait_messages(1, 10)), 1, "messages at %s" % san)
            else:
                mwtest.eq(code, 421, "MAIL for a smarthost certificate naming %s" % san)
                mwtest.eq(sh.commands, [], "commands at the smarthost named %s" % san)
                hits = [a for a in mw.alerts() if a.get("listener") == "w%d" % i and
                        a.get("event") == "certificate_invalid"]
                mwtest.check(hits, "no certificate_invalid alert for %s: %r"
                             % (san, mw.alerts()))
            s.close()
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
