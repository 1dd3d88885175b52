#!/usr/bin/python3
"""AUTH only after TLS, relayed verbatim, never logged.

The backend is aiosmtpd (real software) with an authenticator and
auth_require_tls = False, so that it offers AUTH even in plaintext: what
hides AUTH before TLS is mailward, not the backend.

Before TLS: EHLO shows no AUTH, "AUTH PLAIN <payload>" gets "530 5.7.0" and
the backend never sees an AUTH.  After TLS: EHLO shows AUTH PLAIN LOGIN;
AUTH PLAIN with an initial response gets the backend's 235 and the message
that follows is delivered; AUTH LOGIN's 334 challenges are relayed and a
wrong password gets the backend's 535; AUTH PLAIN without an initial
response gets an empty 334 and then 235.  Neither the base64 payloads nor
the password appear in mailward's log or alert log.
"""

import base64
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, ehlo_keywords, free_port  # noqa: E402

NAME = "mw.test.example"
USER, PASSWORD = b"alice", b"S3cret-pw-7731"
PLAIN = base64.b64encode(b"\0" + USER + b"\0" + PASSWORD).decode()
BAD = base64.b64encode(b"Wrong-pw-9912").decode()
MSG = b"From: alice@sender.test\r\nTo: b@rcpt.test\r\nSubject: authenticated\r\n\r\nhi\r\n"


class AuthBackend:
    def __init__(self):
        from aiosmtpd.controller import Controller
        self.attempts = []     # (mechanism, login, password, success)
        self.messages = []     # (authenticated login, data)
        backend = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                backend.messages.append((session.auth_data, envelope.original_content))
                return "250 2.0.0 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == USER and auth_data.password == PASSWORD
            self.attempts.append((mechanism, auth_data.login, auth_data.password, ok))
            from aiosmtpd.smtp import AuthResult
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login)

        from aiosmtpd.smtp import SMTP

        class Limits(dict):
            # RFC 4954 section 4: AUTH lines up to 12288 octets.
            def __missing__(self, verb):
                return 12288 if verb == "AUTH" else SMTP.command_size_limit

        class LongAuthSMTP(SMTP):
            line_length_limit = 12288 + 2

            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                self.command_size_limits = Limits(AUTH=12288)

        class LongAuthController(Controller):
            def factory(self):
                return LongAuthSMTP(self.handler, **self.SMTP_kwargs)

        self.port = free_port()
        self.ctl = LongAuthController(Handler(), hostname="127.0.0.1", port=self.port,
                                      authenticator=authenticator, auth_require_tls=False)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


def main():
    failures = []
    with mwtest.Env("auth_after_tls") as env:
        be = AuthBackend()
        try:
            mw = env.mailward(listeners={"smtp": {
                "accept_tls": "starttls", "hostname": NAME,
                "forward": "127.0.0.1:%d" % be.port}})
            ctx = mwtest.ssl_client_context(env)

            # Before TLS.
            c = Client(mw.port("smtp"))
            c.reply()
            r = c.cmd("EHLO client.test")
            print("EHLO before TLS: %r" % r)
            if "AUTH" in ehlo_keywords(r):
                failures.append("AUTH offered before TLS: %r" % r)
            r = c.cmd("AUTH PLAIN " + PLAIN)
            if not r.starts("530 5.7.0"):
                failures.append("AUTH before TLS: expected 530 5.7.0, got %r" % r)

            # After TLS, same connection.
            c.starttls(ctx)
            r = c.cmd("EHLO client.test")
            print("EHLO after TLS: %r" % r)
            auth = [l for l in r.lines[1:] if l.upper().startswith("AUTH")]
            if not auth or not {"PLAIN", "LOGIN"} <= set(auth[0].upper().split()[1:]):
                failures.append("AUTH PLAIN LOGIN not offered after TLS: %r" % r)
            r = c.cmd("AUTH PLAIN " + PLAIN)
            print("AUTH PLAIN after TLS: %r" % r)
            if not r.starts("235"):
                failures.append("AUTH PLAIN after TLS: expected the backend's 235, got %r" % r)
            for line, code in (("MAIL FROM:<alice@sender.test>", 250),
                               ("RCPT TO:<b@rcpt.test>", 250), ("DATA", 354)):
                r = c.cmd(line)
                if r.code != code:
                    failures.append("after AUTH: %s got %r" % (line, r))
            r = c.cmd(MSG + b".\r\n")
            if r.code != 250:
                failures.append("after AUTH: end of data got %r" % r)
            c.cmd("QUIT")
            c.close()

            # AUTH LOGIN, wrong password: 334 challenges relayed, 535 relayed.
            c = Client(mw.port("smtp"))
            c.reply()
            c.cmd("EHLO client.test")
            c.starttls(ctx)
            c.cmd("EHLO client.test")
            r1 = c.cmd("AUTH LOGIN")
            r2 = c.cmd(base64.b64encode(USER).decode()) if r1.code == 334 else None
            r3 = c.cmd(BAD) if r2 is not None and r2.code == 334 else None
            print("AUTH LOGIN: %r %r %r" % (r1, r2, r3))
            if not (r1.starts("334 VXNlciBOYW1lAA==") and r2 is not None and
                    r2.starts("334 UGFzc3dvcmQA") and r3 is not None and r3.starts("535")):
                failures.append("AUTH LOGIN exchange not relayed: %r %r %r" % (r1, r2, r3))
            # RFC 4954: an AUTH line may be far longer than 512 octets
            # (OAuth bearer tokens); mailward must relay it, not refuse it.
            longpw = b"L" * 4000
            r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0" + USER + b"\0" + longpw).decode())
            print("AUTH PLAIN, 5.4 KB line: %r" % (r,))
            if r.code != 535:
                failures.append("long AUTH line: expected the backend's 535, got %r" % (r,))
            # ... while any other command line stays limited to 512 octets.
            r = c.cmd("NOOP " + "n" * 600)
            if not r.starts("500 5.5.2"):
                failures.append("600-octet NOOP after TLS: expected 500 5.5.2, got %r" % (r,))
            # AUTH PLAIN without an initial response.
            r1 = c.cmd("AUTH PLAIN")
            r2 = c.cmd(PLAIN) if r1.code == 334 else None
            print("AUTH PLAIN, no initial response: %r %r" % (r1, r2))
            if not (r1.code == 334 and r2 is not None and r2.starts("235")):
                failures.append("AUTH PLAIN with a 334 continuation: %r %r" % (r1, r2))
            c.cmd("QUIT")
            c.close()

            time.sleep(0.5)
            print("backend AUTH attempts: %r" % [(m, l, ok) for m, l, _, ok in be.attempts])
            want = [("PLAIN", USER, PASSWORD, True), ("LOGIN", USER, b"Wrong-pw-9912", False),
                    ("PLAIN", USER, longpw, False), ("PLAIN", USER, PASSWORD, True)]
            if be.attempts != want:
                failures.append("backend AUTH attempts %r, expected %r"
                                % ([(m, l, ok) for m, l, _, ok in be.attempts],
                                   [(m, l, ok) for m, l, _, ok in want]))
            if [d for _, d in be.messages] != [MSG]:
                failures.append("backend messages: %r" % be.messages)
            elif be.messages[0][0] != USER:
                failures.append("message not sent in the authenticated session: %r"
                                % (be.messages[0][0],))
            logs = mw.log() + "\n" + repr(mw.alerts())
            for secret in (PLAIN, BAD, PASSWORD.decode(), "Wrong-pw-9912"):
                if secret in logs:
                    failures.append("AUTH secret %r appears in mailward's log" % secret)
            mw.stop()
        finally:
            be.stop()
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d AUTH checks failed" % len(failures))
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
