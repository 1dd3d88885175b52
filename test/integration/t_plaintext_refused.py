#!/usr/bin/python3
"""require_tls = yes: nothing but EHLO HELO STARTTLS NOOP RSET QUIT before TLS.

Before TLS: MAIL RCPT DATA BDAT AUTH VRFY EXPN each get "530 5.7.0"; EHLO
offers STARTTLS and no AUTH; HELO NOOP RSET get 250, QUIT 221; the backend
sees nothing from the session; alert plaintext_refused names the domain of
MAIL FROM (a UTF-8 one as its bytes, not escaped twice). After TLS: EHLO
offers no STARTTLS, MAIL before a new EHLO gets 503, and the EHLO name given
before TLS is forgotten (the backend is told the name given after TLS).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, session_commands, wait_alerts, ehlo_keywords  # noqa: E402

NAME = "mw.test.example"
MSG = (b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: after tls\r\n\r\n"
       b"hello\r\n")


def before_tls(mw, be):
    c = Client(mw.port("smtp"))
    g = c.reply()
    mwtest.check(g.code == 220 and g.starts("220 %s ESMTP" % NAME), "greeting %r" % g)
    r = c.cmd("EHLO before-tls.test")
    mwtest.eq(r.code, 250, "EHLO before TLS: %r" % r)
    kw = ehlo_keywords(r)
    mwtest.check("STARTTLS" in kw, "STARTTLS not offered before TLS: %r" % r)
    mwtest.check("AUTH" not in kw and not any(k.startswith("AUTH=") for k in kw),
                 "AUTH offered before TLS: %r" % r)
    for line in ("MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@rcpt.test>", "DATA",
                 "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "VRFY bob", "EXPN staff"):
        r = c.cmd(line)
        mwtest.check(r.starts("530 5.7.0"), "%s before TLS: expected 530 5.7.0, got %r"
                     % (line.split(" ")[0], r))
    for line in ("HELO before-tls.test", "NOOP", "RSET"):
        r = c.cmd(line)
        mwtest.eq(r.code, 250, "%s before TLS: %r" % (line, r))
    r = c.cmd("QUIT")
    mwtest.eq(r.code, 221, "QUIT: %r" % r)
    closed, _ = c.wait_closed(3)
    mwtest.check(closed, "not closed after QUIT")
    c.close()

    # A domain in UTF-8 (SMTPUTF8): its bytes reach the alert as the man
    # page says (from 0x80 up as \u00XX), escaped once; the log escapes them.
    c = Client(mw.port("smtp"))
    c.reply()
    c.cmd("EHLO before-tls.test")
    r = c.cmd("MAIL FROM:<a@b\u00fccher.example> SMTPUTF8".encode() + b"\r\n")
    mwtest.check(r.starts("530 5.7.0"), "UTF-8 MAIL before TLS: %r" % r)
    c.close()
    utf8 = "b\u00fccher.example".encode().decode("latin-1")
    mwtest.check(mwtest.wait_for(lambda: any(a.get("domain") == utf8 for a in mw.alerts()),
                                 5), "no alert with domain %r: %r" % (utf8, mw.alerts()))
    mwtest.check("domain=b\\xc3\\xbccher.example" in mw.log(),
                 "the UTF-8 domain in the log:\n%s" % mw.log()[-1500:])

    # BDAT on its own connection: whether a refused BDAT's chunk is consumed
    # is not what this test is about, so nothing follows it.
    c = Client(mw.port("smtp"))
    c.reply()
    c.cmd("EHLO before-tls.test")
    r = c.cmd("BDAT 10")
    mwtest.check(r.starts("530 5.7.0"), "BDAT before TLS: expected 530 5.7.0, got %r" % r)
    c.close()

    time.sleep(0.5)
    cmds = session_commands(be, NAME)
    mwtest.check(cmds == [], "backend received commands before TLS: %r" % cmds)
    mwtest.check(not be.messages, "backend received a message")
    alerts = wait_alerts(mw, "plaintext_refused", 1)
    mwtest.check(alerts, "no plaintext_refused alert: %r" % mw.alerts())
    mwtest.check(any(a.get("domain") == "sender.test" for a in alerts),
                 "no plaintext_refused alert with domain sender.test: %r" % alerts)
    for a in alerts:
        mwtest.eq(a.get("action"), "rejected", "plaintext_refused action")
        mwtest.eq(a.get("severity"), "warning", "plaintext_refused severity")
    # The AUTH payload must never reach a log.
    mwtest.check("AGFsaWNlAHNlY3JldA" not in mw.log(), "AUTH payload in the log")


def after_tls(env, mw, be):
    ctx = mwtest.ssl_client_context(env)
    c = Client(mw.port("smtp"))
    c.reply()
    mwtest.eq(c.cmd("EHLO before-tls.test").code, 250, "EHLO")
    c.starttls(ctx)
    r = c.cmd("MAIL FROM:<alice@sender.test>")
    mwtest.check(r.starts("503"), "MAIL after TLS before a new EHLO: expected 503, got %r" % r)
    r = c.cmd("EHLO after-tls.test")
    mwtest.eq(r.code, 250, "EHLO after TLS: %r" % r)
    mwtest.check("STARTTLS" not in ehlo_keywords(r), "STARTTLS offered after TLS: %r" % r)
    r = c.cmd("STARTTLS")
    mwtest.check(r.starts("503"), "STARTTLS after TLS: expected 503, got %r" % r)
    mwtest.eq(c.cmd("MAIL FROM:<alice@sender.test>").code, 250, "MAIL after TLS")
    mwtest.eq(c.cmd("RCPT TO:<bob@rcpt.test>").code, 250, "RCPT after TLS")
    mwtest.eq(c.cmd("DATA").code, 354, "DATA after TLS")
    r = c.cmd(MSG + b".\r\n")
    mwtest.eq(r.code, 250, "end of data after TLS: %r" % r)
    mwtest.eq(c.cmd("QUIT").code, 221, "QUIT")
    c.close()
    msgs = be.wait_messages(1, 10)
    mwtest.eq(len(msgs), 1, "messages at the backend")
    m = msgs[0]
    mwtest.eq(m.data, MSG, "message bytes")
    mwtest.eq(m.helo, "after-tls.test", "EHLO name the backend was given")
    cmds = session_commands(be, NAME)
    mwtest.check(not any("before-tls.test" in x for x in cmds),
                 "the pre-TLS EHLO name reached the backend: %r" % cmds)


def main():
    with mwtest.Env("plaintext_refused") as env:
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {
            "accept_tls": "starttls", "require_tls": "yes", "hostname": NAME,
            "forward": "127.0.0.1:%d" % be.port}})
        before_tls(mw, be)
        after_tls(env, mw, be)
        mw.stop()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
