#!/usr/bin/python3
"""Outbound AUTH: the MTA's credentials go only to the relay host, once its
certificate is judged as `secure` judges it for the relay host's name.

Three destinations, each aiosmtpd (real software) with STARTTLS and AUTH
(its own, after TLS, taking user:secret): 192.0.2.10 with a certificate
for relay.test from the test CA, 192.0.2.11 with one for relay.test from a
CA nobody trusts, 192.0.2.12 with one for other.test from the test CA.
mailward: outbound, default_level encrypt (which any certificate passes),
relayhost = relay.test. Python's smtplib is the client.

  1. 192.0.2.10: AUTH is offered (after mailward's STARTTLS), the login is
     taken (235), and a message is delivered over TLS.
  2. 192.0.2.11 and .12: the login gets 454 4.7.0 and the destination never
     sees an AUTH line; event=auth_refused says why, and a
     certificate_invalid alert is written. A message still goes through
     (encrypt is the recipient's level), without the login.
  3. A mailward without relayhost: 454 4.7.0 at 192.0.2.10 as well
     (event=auth_refused relayhost=none), the credentials stay home.
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@dest.test\r\nSubject: auth\r\n\r\nhi\r\n"
HOSTS = ("192.0.2.10", "192.0.2.11", "192.0.2.12")


def login(net, addr):
    """EHLO, AUTH as user:secret; then a message to b@dest.test. Returns
    (the AUTH reply code, whether AUTH was offered, the message's refusals)."""
    s = net.smtp(addr)
    s.ehlo("client.sender.test")
    offered = s.has_extn("auth")
    try:
        code = s.login("user", "secret")[0]
    except smtplib.SMTPAuthenticationError as e:
        print("%s: AUTH refused: %d %r" % (addr, e.smtp_code, e.smtp_error))
        code = e.smtp_code
        mwtest.check(e.smtp_error.startswith(b"4.7.0 "), "%s: AUTH reply %r"
                     % (addr, e.smtp_error))
    refused = s.sendmail("a@sender.test", ["b@dest.test"], MSG)
    s.quit()
    return code, offered, refused


def auth_lines(dest):
    return [c for c in dest.command_strings() if c.upper().startswith("AUTH")]


def main():
    with mwtest.Env("out_auth") as env:
        net = env.netns(hosts=HOSTS)
        dests = {}
        for addr, name, kind in ((HOSTS[0], "relay.test", "valid"),
                                 (HOSTS[1], "relay.test", "untrusted"),
                                 (HOSTS[2], "other.test", "valid")):
            dests[addr] = net.dest(addr, tls="starttls", cert=net.cert(name, kind=kind),
                                   auth="user:secret")
        mw = net.outbound(default_level="encrypt", relayhost="relay.test")

        # 1. The relay host: logged in, delivered.
        mwtest.eq(login(net, HOSTS[0]), (235, True, {}), "relay host: AUTH, offered, refused")
        m = dests[HOSTS[0]].wait_messages(1, 10)
        mwtest.eq(len(m), 1, "messages at the relay host")
        mwtest.check(m[0].tls, "the message went in clear text")
        dests[HOSTS[0]].wait_idle()
        mwtest.eq(len(auth_lines(dests[HOSTS[0]])), 1, "AUTH lines at the relay host")

        # 2. Not verified for the relay host's name: no credentials.
        for addr in HOSTS[1:]:
            mwtest.eq(login(net, addr), (454, True, {}), "%s: AUTH, offered, refused" % addr)
            d = dests[addr]
            mwtest.eq(len(d.wait_messages(1, 10)), 1, "%s: messages" % addr)
            d.wait_idle()
            mwtest.eq(auth_lines(d), [], "%s: AUTH lines at the destination" % addr)
        refused = outcheck.log_events(mw, "auth_refused")
        print("auth_refused: %r" % refused)
        # smtplib tries each mechanism offered (PLAIN, then LOGIN): a line each.
        mwtest.eq(sorted(set((x.get("relayhost"), x.get("reason")) for x in refused)),
                  [("relay.test", "certificate not trusted"),
                   ("relay.test", "no certificate name matches match=nexthop (nexthop "
                    "relay.test, hostname relay.test); names: other.test")],
                  "event=auth_refused lines")
        alerts = [a for a in mw.alerts() if a.get("event") == "certificate_invalid"]
        mwtest.eq(len(alerts), len(refused), "certificate_invalid alerts: %r" % mw.alerts())

        # 3. No relay host named: the credentials go nowhere.
        mw.stop()
        mw = net.outbound(default_level="encrypt", port=10026)
        mwtest.eq(login(net, HOSTS[0]), (454, True, {}), "no relayhost: AUTH")
        dests[HOSTS[0]].wait_messages(2, 10)
        dests[HOSTS[0]].wait_idle()
        mwtest.eq(len(auth_lines(dests[HOSTS[0]])), 1, "AUTH lines at 192.0.2.10")
        mwtest.eq(set(x.get("relayhost") for x in outcheck.log_events(mw, "auth_refused")),
                  {"none"}, "event=auth_refused without relayhost")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
