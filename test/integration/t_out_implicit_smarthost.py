#!/usr/bin/python3
"""A plaintext-only legacy client reaches an implicit-TLS smarthost through
mailward (loopback only, no namespaces): listeners with accept_tls = none,
require_tls = no, forward_tls = implicit, forward_ca = the test CA; the
smarthosts are aiosmtpd with implicit TLS. The certificate is checked against
the host name of `forward`.

1. forward = localhost:PORT, the test server certificate (localhost, mx.test,
   127.0.0.1, ::1): smtplib, in plain text, delivers; the smarthost (which
   speaks nothing but TLS) gets the message byte-exact with its envelope.
2. forward = 127.0.0.1:PORT, a certificate for wrong.test only, and
3. forward = localhost:PORT, a certificate for IP 127.0.0.1 only (so the
   name checked is "localhost", not the address connected to):
   the client gets a 4xx/5xx and never a 250 to its message, and the
   smarthost never sees an SMTP command.
4. A smarthost that requires a login (aiosmtpd's AUTH, user:secret): the
   plaintext client sees AUTH in mailward's EHLO reply (the login crosses
   the network only inside the TLS to the smarthost), logs in and
   delivers."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: legacy@lan.test\r\nSubject: wrapped in TLS\r\n\r\n.dot\r\nbody\r\n"


def refused_session(port):
    """MAIL, RCPT, DATA as far as they get; the replies seen."""
    replies = []
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="legacy.lan.test", timeout=20)
    try:
        s.ehlo()
        code, text = s.mail("legacy@lan.test")
        replies.append(("MAIL", code, text))
        if code == 250:
            code, text = s.rcpt("bob@remote.test")
            replies.append(("RCPT", code, text))
            if code == 250:
                try:
                    replies.append(("DATA",) + s.data(MSG))
                except smtplib.SMTPException as e:
                    replies.append(("DATA", repr(e)))
        s.close()
    except smtplib.SMTPServerDisconnected as e:
        replies.append(("disconnected", repr(e)))
    return replies


def main():
    with mwtest.Env("out_implicit_smarthost") as env:
        good = env.recorder(tls="implicit", hostname="smarthost.test")
        wrong = env.recorder(tls="implicit", hostname="smarthost.test",
                             cert=(os.path.join(env.certs, "wrongname.pem"),
                                   os.path.join(env.certs, "wrongname.key")))
        ipcert = env.recorder(tls="implicit", hostname="smarthost.test",
                              cert=mwtest.make_leaf_cert(env, "127.0.0.1", ["127.0.0.1"]))
        authhost = env.recorder(tls="implicit", hostname="smarthost.test",
                                authenticator=mwtest.login_checker("user", "secret"),
                                auth_require_tls=False, auth_required=True)
        common = {"accept_tls": "none", "require_tls": "no", "forward_tls": "implicit",
                  "forward_ca": os.path.join(env.certs, "ca.pem"), "hostname": "mw.lan.test"}
        mw = env.mailward(listeners={
            "legacy": dict(common, forward="localhost:%d" % good.port),
            "wrong": dict(common, forward="127.0.0.1:%d" % wrong.port),
            "ipcert": dict(common, forward="localhost:%d" % ipcert.port),
            "auth": dict(common, forward="localhost:%d" % authhost.port)})

        s = smtplib.SMTP("127.0.0.1", mw.port("legacy"), local_hostname="legacy.lan.test",
                         timeout=20)
        s.ehlo()
        refused = s.sendmail("legacy@lan.test", ["bob@remote.test"], MSG)
        mwtest.eq(refused, {}, "recipients refused")
        s.quit()
        msgs = good.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the smarthost")
        mwtest.eq(msgs[0].data, MSG, "message bytes at the smarthost")
        mwtest.eq((msgs[0].mail_from, msgs[0].rcpt_tos), ("legacy@lan.test", ["bob@remote.test"]),
                  "envelope at the smarthost")

        for name, bad in (("wrong", wrong), ("ipcert", ipcert)):
            replies = refused_session(mw.port(name))
            print("client saw (%s): %r" % (name, replies))
            mwtest.check(any(len(r) == 3 and 400 <= r[1] < 600 for r in replies),
                         "no SMTP error for a smarthost whose name does not match (%s): %r"
                         % (name, replies))
            mwtest.check(not any(r[0] == "DATA" and len(r) == 3 and r[1] == 250
                                 for r in replies),
                         "message accepted for a smarthost whose name does not match (%s)"
                         % name)
            mwtest.eq(bad.commands, [], "commands at the %s smarthost" % name)
            mwtest.eq(bad.messages, [], "messages at the %s smarthost" % name)
        alerts = mw.alerts()
        print("alerts: %r" % alerts)
        for name in ("wrong", "ipcert"):
            hits = [a for a in alerts
                    if a.get("listener") == name and a.get("event") == "certificate_invalid"]
            mwtest.check(hits, "no certificate_invalid alert for the %s smarthost" % name)

        s = smtplib.SMTP("127.0.0.1", mw.port("auth"), local_hostname="legacy.lan.test",
                         timeout=20)
        s.ehlo()
        print("EHLO through mailward to the login smarthost: %r" % s.esmtp_features)
        mwtest.check(s.has_extn("auth"), "no AUTH offered to the plaintext client: %r"
                     % s.esmtp_features)
        mwtest.eq(s.login("user", "secret")[0], 235, "login")
        mwtest.eq(s.sendmail("legacy@lan.test", ["bob@remote.test"], MSG), {}, "refused")
        s.quit()
        mwtest.eq(len(authhost.wait_messages(1, 10)), 1, "messages at the login smarthost")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
