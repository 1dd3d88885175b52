#!/usr/bin/python3
"""Real Sendmail (Debian's 8.17, unpacked by scripts/fetch-sendmail) behind
mailward, set up as README's "Sendmail" section says: client_identity =
none, Sendmail on 127.0.0.1, and forward_source = 127.0.0.2 with a hosts
line for that address. Sendmail relays what it accepts to a recorder
(aiosmtpd), so a message can be followed to the end.

1. Through mailward with STARTTLS (smtplib): Sendmail's own capabilities
   (DSN, 8BITMIME, SIZE) reach the client, a message to bob@rcpt.test (a
   domain Sendmail relays) is accepted by Sendmail and arrives at the
   recorder, received by Sendmail from mailward's 127.0.0.2 with the
   client's EHLO name. A plaintext MAIL gets mailward's 530 and Sendmail
   never sees that session.
2. A recipient Sendmail must not relay for (x@elsewhere.test) gets
   Sendmail's 550 5.7.1 Relaying denied, through mailward, and nothing of
   it reaches the recorder.
3. Why forward_source is in README: a mailward without it connects from
   127.0.0.1, which Sendmail's rules (cf/m4/proto.m4, Relay_ok: "originated
   locally") let relay anywhere, whatever the access map says. Its RCPT to
   x@elsewhere.test is accepted: README's warning is about this. (The
   transaction is reset, nothing is sent.)
4. forward_source that is not an address of this host (192.0.2.1): mailward
   does not start, and says why."""

import os
import smtplib
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = (b"From: alice@sender.test\r\nTo: bob@rcpt.test\r\nSubject: through Sendmail\r\n"
       b"\r\nHello through mailward and Sendmail.\r\n")


def client(mw, tls=True):
    s = smtplib.SMTP("127.0.0.1", mw.port("in"), local_hostname="client.test", timeout=30)
    s.ehlo()
    if tls:
        ctx = ssl.create_default_context(cafile=os.path.join(mw.env.certs, "ca.pem"))
        s.starttls(context=ctx)
        s.ehlo()
    return s


def listeners(sm, **extra):
    opts = {"accept_tls": "starttls", "require_tls": "yes",
            "forward": "127.0.0.1:%d" % sm.port, "client_identity": "none"}
    opts.update(extra)
    return {"in": opts}


def main():
    with mwtest.Env("sendmail") as env:
        rec = env.recorder(hostname="smarthost.test")
        sm = env.sendmail(smarthost=("127.0.0.1", rec.port),
                          hosts=["127.0.0.2 mailward.localdomain"])
        print("Sendmail on %d, relaying to %d" % (sm.port, rec.port), flush=True)

        print("== 1. a message through mailward and Sendmail", flush=True)
        mw = env.mailward(listeners=listeners(sm, forward_source="127.0.0.2"))
        s = client(mw, tls=False)
        code, text = s.mail("alice@sender.test")
        mwtest.eq((code, text[:5]), (530, b"5.7.0"), "plaintext MAIL")
        s.quit()
        s = client(mw)
        for kw in ("dsn", "8bitmime", "size", "enhancedstatuscodes"):
            mwtest.check(s.has_extn(kw), "Sendmail's %s is not offered through mailward: %r"
                         % (kw.upper(), s.esmtp_features))
        refused = s.sendmail("alice@sender.test", ["bob@rcpt.test"], MSG)
        mwtest.eq(refused, {}, "recipients refused")
        s.quit()
        got = mwtest.wait_for(lambda: rec.messages, 30)
        mwtest.check(got, "nothing reached the recorder in 30 s; Sendmail's queue:\n%s\n%s"
                     % (sm.queue(), sm.output()))
        m = got[0]
        mwtest.eq((m.mail_from, m.rcpt_tos), ("alice@sender.test", ["bob@rcpt.test"]),
                  "envelope at the recorder")
        mwtest.check(m.data.endswith(MSG.split(b"\r\n\r\n", 1)[1]),
                     "message body at the recorder: %r" % m.data[-200:])
        received = m.data.split(b"\r\n\r\n", 1)[0].decode()
        print(received)
        mwtest.check("from client.test (mailward.localdomain [127.0.0.2])" in received,
                     "Sendmail's Received line does not name the client's EHLO and "
                     "127.0.0.2: %r" % received)
        mwtest.eq(rec.sessions, 1, "sessions at the recorder (the plaintext one never "
                  "reached Sendmail)")

        print("== 2. relaying for another domain is denied by Sendmail", flush=True)
        s = client(mw)
        s.mail("alice@sender.test")
        code, text = s.rcpt("x@elsewhere.test")
        mwtest.eq((code, text), (550, b"5.7.1 <x@elsewhere.test>... Relaying denied"),
                  "RCPT to a domain Sendmail does not relay for")
        s.quit()
        mw.stop()

        print("== 3. without forward_source Sendmail relays anything", flush=True)
        mw = env.mailward(listeners=listeners(sm))
        s = client(mw)
        s.mail("alice@sender.test")
        code, text = s.rcpt("x@elsewhere.test")
        mwtest.eq(code, 250, "RCPT to elsewhere.test from 127.0.0.1 (README's warning): %r"
                  % text)
        s.rset()
        s.quit()
        mw.stop()
        time.sleep(0.5)
        mwtest.eq(len(rec.messages), 1, "messages at the recorder in the end")

        print("== 4. forward_source this host does not have", flush=True)
        conf, _ = env.mailward_config(listeners(sm, forward_source="192.0.2.1"))
        r = mwtest.run_mailward(["-c", conf], timeout=20)
        print("exit %d: %s" % (r.returncode, r.stderr))
        mwtest.check(r.returncode != 0 and
                     "[in]: forward_source 192.0.2.1: Cannot assign requested address"
                     in r.stderr, "mailward with forward_source 192.0.2.1: exit %d, %r"
                     % (r.returncode, r.stderr))
    print("ok")


if __name__ == "__main__":
    main()
