#!/usr/bin/python3
"""mailward behind a load balancer: HAProxy (real software) in front of it,
sending the PROXY protocol header (accept_proxy = yes, proxy_from =
127.0.0.1, HAProxy's address). The backend is aiosmtpd with XCLIENT
(recorded), so what mailward makes of the header shows at the backend.

HAProxy (mode tcp) listens on three frontends: "v1" (send-proxy, version 1)
and "v2" (send-proxy-v2, on 127.0.0.1 and [::1], with HAProxy's SMTP health
check, which sends a LOCAL header) in front of mailward's STARTTLS
listener, "v2s" (send-proxy-v2) in front of its implicit-TLS one. Clients
connect to HAProxy from addresses of their own (127.0.0.5 and up).

  1. Through v1, v2 and [::1] on v2: STARTTLS and a message; the backend's
     XCLIENT names the client's address and port, not HAProxy's, and the
     log says event=proxy client=... via=HAProxy's. Through v2s: implicit
     TLS and a message, the same.
  2. The rest of mailward's rules hold behind the balancer: plaintext MAIL
     gets 530; max_per_client = 2 counts clients, not the balancer: a third
     session from one client gets 421 4.7.0, another client at once 220.
  3. HAProxy's health check (EHLO after a LOCAL header) finds mailward up
     (its stats socket says UP), and mailward logs those connections as the
     balancer's own.
  4. Straight to mailward: from an address outside proxy_from, closed at
     once with nothing said (event=proxy_refused); from HAProxy's address
     without a header, closed with nothing said (event=proxy_failed, the
     peer's bytes escaped in its reason), and with nothing at all, closed
     after timeout_handshake (proxy_timeout).
  5. Headers sent by hand from HAProxy's address: a LOCAL one gets its
     greeting while two connections wait for theirs (those are not counted
     as the balancer's for max_per_client); a TCP6 header with IPv4-mapped
     addresses names the IPv4 client (XCLIENT ADDR=127.0.0.9), also when
     only the client's is mapped (to ::1).
  6. A listener on an IPv4-mapped address ([::ffff:127.0.0.1], without
     accept_proxy): an IPv4 client's XCLIENT names it as IPv4.
  7. SIGTERM (drain_timeout = 1) while an implicit-TLS connection waits for
     its header: closed with nothing said, no plaintext 421.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: via a balancer\r\n\r\nhi\r\n"

HAPROXY_CFG = """\
global
    maxconn 200
    stats socket {stats} mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend v1
    bind 127.0.0.1:{p1}
    default_backend mw_v1

backend mw_v1
    server mw 127.0.0.1:{smtp} send-proxy

frontend v2
    bind 127.0.0.1:{p2}
    bind [::1]:{p2}
    default_backend mw_v2

backend mw_v2
    option smtpchk EHLO lb.test
    server mw 127.0.0.1:{smtp} send-proxy-v2 check inter 300 rise 1 fall 2

frontend v2s
    bind 127.0.0.1:{p3}
    default_backend mw_v2s

backend mw_v2s
    server mw 127.0.0.1:{smtps} send-proxy-v2
"""


def send(env, be, port, source, implicit=False, host="127.0.0.1"):
    """One message from source through HAProxy's port; returns (the
    client's own address and port, the backend's Message)."""
    n = len(be.messages)
    ctx = mwtest.ssl_client_context(env)
    if implicit:
        s = smtplib.SMTP_SSL(host, port, local_hostname="client.test", timeout=20,
                             source_address=(source, 0), context=ctx)
    else:
        s = smtplib.SMTP(host, port, local_hostname="client.test", timeout=20,
                         source_address=(source, 0))
        s.starttls(context=ctx)
    me = s.sock.getsockname()[:2]
    s.ehlo("client.test")
    mwtest.eq(s.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "refused recipients")
    s.quit()
    msgs = be.wait_messages(n + 1, 10)
    mwtest.eq(len(msgs), n + 1, "messages at the backend")
    mwtest.eq(msgs[-1].data, MSG, "message bytes")
    return me, msgs[-1]


def haproxy_stat(path, backend):
    """The status HAProxy's stats socket gives server mw of backend."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode().splitlines():
        f = line.split(",")
        if len(f) > 17 and f[0] == backend and f[1] == "mw":
            return f[17]
    return None


def main():
    if not shutil.which("haproxy"):
        mwtest.skip("haproxy is not installed")
    with mwtest.Env("proxy_in") as env:
        be = env.recorder(xclient=True)
        base = {"forward": "127.0.0.1:%d" % be.port, "client_identity": "xclient",
                "accept_proxy": "yes", "proxy_from": "127.0.0.1",
                "timeout_handshake": "2"}
        mapped = {k: v for k, v in base.items() if k not in ("accept_proxy", "proxy_from")}
        mw = env.mailward(listeners={
            "smtp": dict(base, accept_tls="starttls", max_per_client="2"),
            "smtps": dict(base, accept_tls="implicit"),
            "mapped": dict(mapped, accept_tls="starttls",
                           listen="[::ffff:127.0.0.1]:%d" % mwtest.free_port()),
        }, globals={"drain_timeout": "1"})
        p1, p2, p3 = mwtest.free_port(), mwtest.free_port(), mwtest.free_port()
        stats = env.path("haproxy.sock")
        cfg = env.path("haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(stats=stats, p1=p1, p2=p2, p3=p3,
                                       smtp=mw.port("smtp"), smtps=mw.port("smtps")))
        hap = env.spawn(["haproxy", "-db", "-f", cfg], log=env.path("haproxy.log"))
        mwtest.wait_listening([p1, p2, p3], 10, alive=lambda: hap.poll() is None)

        # 1. The client's own address reaches the backend.
        for what, port, source, host, implicit in (
                ("v1", p1, "127.0.0.5", "127.0.0.1", False),
                ("v2", p2, "127.0.0.6", "127.0.0.1", False),
                ("v2 over IPv6", p2, "::1", "::1", False),
                ("v2, implicit TLS", p3, "127.0.0.5", "127.0.0.1", True)):
            (ip, cport), m = send(env, be, port, source, implicit, host)
            want = "IPV6:%s" % ip if ":" in ip else ip
            print("%s: client %s:%d, XCLIENT %r" % (what, ip, cport, m.xclient))
            mwtest.check(m.xclient is not None, "%s: no XCLIENT at the backend" % what)
            mwtest.eq((m.xclient.get("ADDR"), m.xclient.get("PORT")), (want, str(cport)),
                      "%s: XCLIENT ADDR and PORT" % what)
            client = "[%s]:%d" % (ip, cport) if ":" in ip else "%s:%d" % (ip, cport)
            got = re.findall(r"event=proxy client=(\S+) via=127\.0\.0\.1:\d+$", mw.log(),
                             re.M)
            mwtest.check(client in got, "%s: no event=proxy line for %s (got %r)"
                         % (what, client, got))

        # 2. TLS still required; max_per_client counts the clients.
        c = Client(p2, source="127.0.0.5")
        mwtest.eq(c.reply().code, 220, "greeting through HAProxy")
        c.cmd("EHLO client.test")
        r = c.cmd("MAIL FROM:<a@sender.test>")
        mwtest.check(r.starts("530 5.7.0"), "plaintext MAIL through HAProxy: %r" % r)
        c.close()
        held = []
        for i in range(2):
            h = Client(p2, source="127.0.0.7")
            mwtest.eq(h.reply().code, 220, "held session %d from 127.0.0.7" % i)
            held.append(h)
        third = Client(p2, source="127.0.0.7")
        r = third.reply()
        print("third session from 127.0.0.7: %r" % r)
        mwtest.check(r.starts("421 4.7.0") and "from your address" in str(r),
                     "third session from one client: %r" % r)
        third.close()
        other = Client(p2, source="127.0.0.8")
        r = other.reply()
        mwtest.eq(r.code, 220, "a session from another client meanwhile")
        other.close()
        for h in held:
            h.close()

        # 3. HAProxy's health check.
        ok = mwtest.wait_for(lambda: haproxy_stat(stats, "mw_v2") == "UP", 10)
        mwtest.check(ok, "HAProxy's check of mailward: %r\n%s"
                     % (haproxy_stat(stats, "mw_v2"), mw.log()[-3000:]))
        locals_ = re.findall(r"event=proxy client=127\.0\.0\.1:\d+ note=", mw.log())
        print("health checks seen: %d" % len(locals_))
        mwtest.check(len(locals_) >= 1, "no event=proxy line for a LOCAL header")

        # 4. Straight to mailward.
        n_refused = mw.log().count("event=proxy_refused")
        c = Client(mw.port("smtp"), source="127.0.0.9")
        closed, got = c.wait_closed(5)
        mwtest.eq((closed, got), (True, b""), "a client outside proxy_from")
        c.close()
        mwtest.check(mwtest.wait_for(
            lambda: mw.log().count("event=proxy_refused") == n_refused + 1, 5),
            "no event=proxy_refused line")
        c = Client(mw.port("smtp"))
        c.send(b"EHLO client.test\r\n")
        closed, got = c.wait_closed(5)
        mwtest.eq((closed, got), (True, b""), "plaintext where a PROXY header was due")
        c.close()
        mwtest.check(mwtest.wait_for(lambda: re.search(
            r'event=proxy_failed reason="no PROXY protocol header"', mw.log()), 5),
            "no event=proxy_failed line:\n%s" % mw.log()[-2000:])
        c = Client(mw.port("smtp"))
        c.send(b'PROXY T"x=1\x1b[7 192.0.2.1 192.0.2.2 1 2\r\n')
        closed, got = c.wait_closed(5)
        mwtest.eq((closed, got), (True, b""), "a bad v1 line")
        c.close()
        mwtest.check(mwtest.wait_for(lambda: "unknown protocol" in mw.log(), 5),
                     "no event=proxy_failed line for the bad v1 line")
        line = [x for x in mw.log().splitlines() if "unknown protocol" in x][0]
        print("logged: %r" % line)
        mwtest.check("\x1b" not in line and 'T"x' not in line and
                     "unknown protocol 'T?x?1??7'" in line,
                     "the peer's bytes logged as they came: %r" % line)
        t0 = time.monotonic()
        c = Client(mw.port("smtps"))
        closed, got = c.wait_closed(10)
        took = time.monotonic() - t0
        print("silent connection closed after %.1f s" % took)
        mwtest.eq((closed, got), (True, b""), "a connection that sends nothing")
        mwtest.check(1.5 < took < 5, "closed after %.1f s, timeout_handshake = 2" % took)
        c.close()
        mwtest.check(mwtest.wait_for(
            lambda: "event=close reason=proxy_timeout" in mw.log(), 5),
            "no close with reason=proxy_timeout")
        mwtest.check(hap.poll() is None, "HAProxy died")

        # 5. Headers by hand.
        waiting = [Client(mw.port("smtp")) for _ in range(2)]
        time.sleep(0.2)
        local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
        c = Client(mw.port("smtp"))
        c.send(local)
        r = c.reply()
        mwtest.eq(r.code, 220, "a LOCAL header while two connections wait for theirs")
        c.close()
        for w in waiting:
            w.close()
        for dst in ("::ffff:127.0.0.1", "::1"):
            n = len(be.messages)
            c = Client(mw.port("smtp"))
            c.send(b"PROXY TCP6 ::ffff:127.0.0.9 %s 40000 25\r\n" % dst.encode())
            mwtest.eq(c.reply().code, 220, "greeting after a mapped TCP6 header (to %s)" % dst)
            c.cmd("EHLO client.test")
            c.starttls(mwtest.ssl_client_context(env))
            c.cmd("EHLO client.test")
            for line, code in (("MAIL FROM:<a@sender.test>", 250),
                               ("RCPT TO:<b@rcpt.test>", 250), ("DATA", 354),
                               (MSG + b".\r\n", 250)):
                r = c.cmd(line)
                mwtest.eq(r.code, code, "%r answered %r" % (line[:20], r))
            c.close()
            m = be.wait_messages(n + 1, 10)[-1]
            print("mapped TCP6 header to %s: XCLIENT %r" % (dst, m.xclient))
            mwtest.eq((m.xclient.get("ADDR"), m.xclient.get("PORT")), ("127.0.0.9", "40000"),
                      "XCLIENT for a TCP6 header with an IPv4-mapped client (to %s)" % dst)

        # 6. A listener on an IPv4-mapped address.
        (ip, cport), m = send(env, be, mw.port("mapped"), "127.0.0.5")
        print("listener on [::ffff:127.0.0.1]: XCLIENT %r" % m.xclient)
        mwtest.eq((m.xclient.get("ADDR"), m.xclient.get("PORT")), ("127.0.0.5", str(cport)),
                  "XCLIENT of an IPv4 client on an IPv4-mapped listener")

        # 7. SIGTERM while a connection waits for its header.
        c = Client(mw.port("smtps"))
        time.sleep(0.2)
        os.kill(mw.pid, signal.SIGTERM)
        closed, got = c.wait_closed(10)
        mwtest.eq((closed, got), (True, b""), "a connection waiting for its header at SIGTERM")
        c.close()
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
