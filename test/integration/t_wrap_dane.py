#!/usr/bin/python3
"""A plaintext client's smarthost checked by DANE (forward_verify = dane or
dane-only): the smarthost's TLSA records at _PORT._tcp.HOST, looked up with
DNSSEC, decide; without validated records, dane checks the certificate as
forward_verify = yes does and dane-only refuses.

The test bed (network namespaces): nsd serving the signed zone test. and
dnsmasq validating it (mwtest.DnssecZone), the sender's resolver; smarthosts
  192.0.2.20:465  implicit TLS, a certificate nobody's CA signed, for
                  smtp.dane.test (so forward_verify = yes refuses it)
  192.0.2.21:465  implicit TLS, a certificate of the test CA for
                  plain.dane.test
  192.0.2.22:587  STARTTLS, a certificate nobody's CA signed, for
                  sub.dane.test
and one mailward in the sender with a listener per case (accept_tls none,
forward_tls implicit or starttls), each relaying one message from smtplib:

  listener  forward              forward_verify  DNS                  outcome
  ee        smtp.dane.test:465   dane            3 1 1 of its key     delivered
  yes       smtp.dane.test:465   yes             (not looked at)      421, not delivered
  wrong     wrong.dane.test:465  dane            A .20, 3 1 1 other   421, certificate_invalid
                                                                      alert (tlsa-invalid)
  ca        plain.dane.test:465  dane            no TLSA              delivered (the CA's
                                                                      certificate and name)
  only      plain.dane.test:465  dane-only       no TLSA              421, dane_required alert
  sub       sub.dane.test:587    dane            3 1 1 at _587._tcp   delivered over STARTTLS
  bogus     bogus.dane.test:465  dane            A .20, TLSA bogus    421, dnssec_invalid alert

A refused session never reaches DATA at the smarthost (it is refused right
after the handshake), the client gets 421 and keeps its message, and the
log says event=backend_unverified with the result; a delivered one logs
event=backend_verified by match-ee or ca."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402
from t_out_dane import tlsa_311  # noqa: E402

SH, PLAIN, SUB, RES, AUTH = "192.0.2.20", "192.0.2.21", "192.0.2.22", "192.0.2.53", "192.0.2.54"
MSG = b"From: legacy@lan.test\r\nTo: bob@remote.test\r\nSubject: via smarthost\r\n\r\nhi\r\n"

CASES = [  # listener, forward, forward_tls, forward_verify, delivered or (alert, result)
    ("ee", "smtp.dane.test:465", "implicit", "dane", "match-ee"),
    ("yes", "smtp.dane.test:465", "implicit", "yes", (None, None)),
    ("wrong", "wrong.dane.test:465", "implicit", "dane",
     ("certificate_invalid", "tlsa-invalid")),
    ("ca", "plain.dane.test:465", "implicit", "dane", "ca"),
    ("only", "plain.dane.test:465", "implicit", "dane-only",
     ("dane_required", "dane-required")),
    ("sub", "sub.dane.test:587", "starttls", "dane", "match-ee"),
    ("bogus", "bogus.dane.test:465", "implicit", "dane", ("dnssec_invalid", "dnssec-invalid")),
]


def main():
    with mwtest.Env("wrap_dane") as env:
        net = env.netns(hosts=(SH, PLAIN, SUB, RES, AUTH))
        sh_cert = net.cert("smtp.dane.test", kind="untrusted")
        plain_cert = net.cert("plain.dane.test")
        sub_cert = net.cert("sub.dane.test", kind="untrusted")
        other = net.cert("other.test")
        records = [
            "smtp.dane.test. A " + SH, "_465._tcp.smtp.dane.test. TLSA 3 1 1 " + tlsa_311(sh_cert[0]),
            "wrong.dane.test. A " + SH,
            "_465._tcp.wrong.dane.test. TLSA 3 1 1 " + tlsa_311(other[0]),
            "plain.dane.test. A " + PLAIN,
            "sub.dane.test. A " + SUB, "_587._tcp.sub.dane.test. TLSA 3 1 1 " + tlsa_311(sub_cert[0]),
            "bogus.dane.test. A " + SH]
        bogus = ["_465._tcp.bogus.dane.test. TLSA 3 1 1 " + tlsa_311(sh_cert[0])]
        net.dnssec(AUTH, RES, records=records, bogus=bogus)
        net.resolver(RES, options="trust-ad edns0 timeout:3 attempts:1")
        dests = {SH: net.dest(SH, port=465, tls="implicit", cert=sh_cert,
                              hostname="smtp.dane.test"),
                 PLAIN: net.dest(PLAIN, port=465, tls="implicit", cert=plain_cert,
                                 hostname="plain.dane.test"),
                 SUB: net.dest(SUB, port=587, tls="starttls", cert=sub_cert,
                               hostname="sub.dane.test")}
        listeners = {}
        for name, forward, ftls, verify, _ in CASES:
            listeners[name] = {"listen": "127.0.0.1:%d" % mwtest.free_port(),
                               "accept_tls": "none", "require_tls": "no", "forward": forward,
                               "forward_tls": ftls, "forward_verify": verify,
                               "forward_ca": os.path.join(env.certs, "ca.pem")}
        mw = env.mailward(listeners=listeners, netns=net.sender)

        for name, forward, ftls, verify, want in CASES:
            print("== %s: %s, %s, forward_verify = %s" % (name, forward, ftls, verify),
                  flush=True)
            dest = dests[{"smtp": SH, "wrong": SH, "bogus": SH, "plain": PLAIN,
                          "sub": SUB}[forward.split(".")[0]]]
            before = len(dest.messages)
            nalerts = len(mw.alerts())
            s = net.smtp("127.0.0.1", mw.port(name), local_hostname="legacy.lan.test")
            s.ehlo()
            code, text = s.mail("legacy@lan.test")
            if isinstance(want, str):
                mwtest.eq(code, 250, "MAIL through [%s] (%r)" % (name, text))
                mwtest.eq(s.rcpt("bob@remote.test")[0], 250, "RCPT through [%s]" % name)
                mwtest.eq(s.data(MSG)[0], 250, "end of data through [%s]" % name)
                s.quit()
                msgs = dest.wait_messages(before + 1, 10)
                mwtest.eq(len(msgs), before + 1, "messages at the smarthost after [%s]" % name)
                mwtest.eq(msgs[-1].tls, True, "TLS at the smarthost [%s]" % name)
                got = [x for x in outcheck.log_events(mw, "backend_verified")
                       if x.get("server") == forward]
                mwtest.check([x for x in got if x.get("by") == want],
                             "[%s]: no event=backend_verified by=%s: %r" % (name, want, got))
                continue
            mwtest.eq(code, 421, "MAIL through [%s]: %r" % (name, text))
            try:
                s.quit()
            except Exception:  # noqa: BLE001 - the session is closed
                pass
            mwtest.eq(len(dest.messages), before, "messages at the smarthost after [%s]" % name)
            event, result = want
            if event is None:
                continue
            got = mwtest.wait_alerts(mw, n=nalerts + 1)
            a = got[-1]
            print("alert: %r" % a)
            mwtest.eq([a.get("event"), a.get("observed"), a.get("listener")],
                      [event, result, name], "[%s]: the alert (event, observed, listener)"
                      % name)
            lines = [x for x in outcheck.log_events(mw, "backend_unverified")
                     if x.get("server") == forward and x.get("result") == result]
            mwtest.check(lines, "[%s]: no event=backend_unverified result=%s; log:\n%s"
                         % (name, result, mw.log()[-3000:]))
        for d in dests.values():
            d.check_idle()
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
