#!/usr/bin/python3
"""Invariant 3: bytes a client sent before TLS is up are never acted on.

1. "STARTTLS\r\nMAIL FROM:<a@evil.test>\r\n" in one send: no 220, "554 5.7.0",
   connection closed, the backend sees nothing, alert starttls_injection.
2. "STARTTLS\r\n" and the injected commands in a second send right behind it,
   before any handshake (may race with mailward's 220): whatever mailward
   answers, the injected commands never reach the backend and no 250 comes.
   Then the same deterministically: plaintext commands sent after the 220,
   where the ClientHello belongs.
3. Implicit TLS listener, client speaks plaintext first: closed at once,
   nothing at the backend, alert starttls_injection.
4. An SSLv2-format CLIENT-HELLO (what old clients and scanners send) on the
   implicit listener and after STARTTLS is a handshake that fails, not
   plaintext: closed, alert tls_handshake_failed (warning), and no
   starttls_injection (critical, which would run alert_command).
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, session_commands, wait_alerts, ehlo_keywords  # noqa: E402

NAME = "mw.test.example"


def check_backend_clean(be, what):
    time.sleep(0.5)
    cmds = session_commands(be, NAME)
    mwtest.check(cmds == [], "%s: backend received session commands %r" % (what, cmds))
    mwtest.check(not be.messages, "%s: backend received a message" % what)


def one_send(mw, be):
    c = Client(mw.port("smtp"))
    mwtest.eq(c.reply().code, 220, "greeting")
    r = c.cmd("EHLO client.test")
    mwtest.check(r.code == 250 and "STARTTLS" in ehlo_keywords(r),
                 "EHLO before TLS must offer STARTTLS, got %r" % r)
    c.send(b"STARTTLS\r\nMAIL FROM:<a@evil.test>\r\n")
    closed, data = c.wait_closed(5)
    c.close()
    text = data.decode("latin-1")
    print("one send: mailward answered %r, closed=%s" % (text, closed))
    mwtest.check(not text.startswith("220"), "mailward answered 220 to a STARTTLS with "
                 "pipelined commands: %r" % text)
    mwtest.check(text.startswith("554 5.7.0"), "expected 554 5.7.0, got %r" % text)
    mwtest.check(text.count("\r\n") == 1, "expected exactly one reply, got %r" % text)
    mwtest.check(closed, "connection not closed after the 554")
    check_backend_clean(be, "one send")
    alerts = wait_alerts(mw, "starttls_injection", 1)
    mwtest.check(len(alerts) == 1, "expected one starttls_injection alert, got %r" % mw.alerts())
    a = alerts[0]
    mwtest.eq(a.get("severity"), "critical", "alert severity")
    mwtest.eq(a.get("action"), "closed", "alert action")
    mwtest.eq(a.get("listener"), "smtp", "alert listener")


def second_send(mw, be):
    c = Client(mw.port("smtp"))
    mwtest.eq(c.reply().code, 220, "greeting")
    mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO")
    c.send(b"STARTTLS\r\n")
    c.send(b"MAIL FROM:<b@evil.test>\r\nRCPT TO:<victim@rcpt.test>\r\nDATA\r\n")
    closed, data = c.wait_closed(8)
    c.close()
    text = data.decode("latin-1")
    print("second send: mailward answered %r, closed=%s" % (text, closed))
    mwtest.check(closed, "session not ended after plaintext bytes behind STARTTLS")
    mwtest.check("\r\n250" not in "\r\n" + text and "\r\n354" not in "\r\n" + text,
                 "injected commands were answered: %r" % text)
    time.sleep(0.5)
    cmds = session_commands(be, NAME)
    mwtest.check(not any("evil.test" in c or "rcpt.test" in c for c in cmds),
                 "injected commands reached the backend: %r" % cmds)
    check_backend_clean(be, "second send")


def after_220(mw, be):
    """Plaintext commands where the ClientHello should be, after the 220: the
    handshake fails, the session ends, nothing is executed."""
    c = Client(mw.port("smtp"))
    mwtest.eq(c.reply().code, 220, "greeting")
    mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO")
    r = c.cmd("STARTTLS")
    mwtest.check(r.starts("220 2.0.0"), "STARTTLS alone: expected 220 2.0.0, got %r" % r)
    c.send(b"MAIL FROM:<c@evil.test>\r\nRCPT TO:<victim@rcpt.test>\r\nDATA\r\n")
    closed, data = c.wait_closed(8)
    c.close()
    print("after 220: mailward sent %r, closed=%s" % (data[:80], closed))
    mwtest.check(closed, "session not ended after plaintext instead of a ClientHello")
    mwtest.check(b"250" not in data and b"354" not in data,
                 "plaintext after the 220 was answered: %r" % data)
    check_backend_clean(be, "after 220")


def implicit_plaintext(mw, be):
    n_before = len(wait_alerts(mw, "starttls_injection", 0, 0))
    c = Client(mw.port("smtps"))
    c.send(b"EHLO x\r\n")
    t0 = time.monotonic()
    closed, data = c.wait_closed(5)
    c.close()
    print("implicit: received %r, closed=%s after %.1fs" % (data, closed, time.monotonic() - t0))
    # timeout_handshake is 30 s here: closing within 5 s means detection.
    mwtest.check(closed, "implicit listener kept a plaintext client open")
    mwtest.check(b"250" not in data and not data.startswith(b"220"),
                 "implicit listener answered plaintext: %r" % data)
    check_backend_clean(be, "implicit")
    alerts = wait_alerts(mw, "starttls_injection", n_before + 1)
    mwtest.check(len(alerts) == n_before + 1,
                 "expected a starttls_injection alert for the implicit listener, got %r"
                 % mw.alerts())
    mwtest.eq(alerts[-1].get("listener"), "smtps", "alert listener")


def sslv2_hello():
    """An SSLv2 CLIENT-HELLO record offering TLS 1.2 and three suites."""
    suites = b"\x00\xc0\x2f" + b"\x00\x00\x9c" + b"\x00\x00\x2f"
    challenge = os.urandom(16)
    body = (b"\x01\x03\x03" + struct.pack(">HHH", len(suites), 0, len(challenge)) +
            suites + challenge)
    return struct.pack(">H", 0x8000 | len(body)) + body


def sslv2(mw, be):
    injections = len(wait_alerts(mw, "starttls_injection", 0, 0))
    failed = len(wait_alerts(mw, "tls_handshake_failed", 0, 0))
    s = socket.create_connection(("127.0.0.1", mw.port("smtps")), timeout=5)
    s.sendall(sslv2_hello())
    try:
        got = s.recv(100)
    except (socket.timeout, ConnectionResetError) as e:
        got = repr(e).encode()
    s.close()
    c = Client(mw.port("smtp"))
    c.reply()
    c.cmd("EHLO client.test")
    mwtest.eq(c.cmd("STARTTLS").code, 220, "STARTTLS")
    c.send(sslv2_hello())
    closed, data = c.wait_closed(5)
    c.close()
    print("SSLv2 hello: implicit got %r; after STARTTLS closed=%s, %r" % (got, closed, data))
    mwtest.check(closed, "the session stayed open after an SSLv2 hello")
    check_backend_clean(be, "SSLv2 hello")
    alerts = wait_alerts(mw, "tls_handshake_failed", failed + 2)
    mwtest.eq(sorted(a.get("listener") for a in alerts[failed:]), ["smtp", "smtps"],
              "tls_handshake_failed alerts for the SSLv2 hellos (all: %r)" % mw.alerts())
    mwtest.eq({a.get("severity") for a in alerts[failed:]}, {"warning"}, "their severity")
    mwtest.eq(len(wait_alerts(mw, "starttls_injection", 0, 0)), injections,
              "starttls_injection alerts after the SSLv2 hellos")


def main():
    with mwtest.Env("starttls_injection") as env:
        be = env.recorder()
        common = {"forward": "127.0.0.1:%d" % be.port, "hostname": NAME}
        mw = env.mailward(listeners={
            "smtp": dict(common, accept_tls="starttls"),
            "smtps": dict(common, accept_tls="implicit", timeout_handshake="30"),
        })
        one_send(mw, be)
        second_send(mw, be)
        after_220(mw, be)
        implicit_plaintext(mw, be)
        sslv2(mw, be)
        mw.stop()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
