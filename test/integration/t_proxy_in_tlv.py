#!/usr/bin/python3
"""The TLVs of a PROXY protocol version 2 header, as HAProxy (real software)
sends them in front of mailward (accept_proxy = yes, proxy_from =
127.0.0.1). The backend is aiosmtpd with XCLIENT (recorded).

HAProxy (mode tcp) has three frontends:
  "ids"    passes TCP through, send-proxy-v2 with proxy-v2-options
           crc32c,unique-id (unique-id-format of its own, logged by
           HAProxy too);
  "ends"   ends the client's TLS itself (bind ... ssl crt), send-proxy-v2
           with proxy-v2-options ssl,crc32c, in front of mailward's
           STARTTLS listener;
  "ends2"  the same, in front of mailward's implicit-TLS listener.

  1. Through "ids", STARTTLS and a message: delivered; event=proxy names
     the client, unique_id= is the id HAProxy's own log gives that
     connection, and crc32c=yes.
  2. Through "ends" and "ends2", implicit TLS at HAProxy: the client gets
     421 4.7.0 as its greeting (through HAProxy's TLS), the log says
     event=proxy_tls_ended tls=TLSv1.3, nothing reaches the backend, and
     mailward_sessions_refused_total{reason="balancer_tls"} counts both.
  3. Headers by hand from HAProxy's address: a CRC32C that does not match,
     and a TLV that runs past the header: closed with nothing said,
     event=proxy_failed with the reason. An AWS VPC endpoint TLV, and a
     unique id with bytes that are not plain: logged as endpoint=aws:...
     and unique_id=0x..., and the session goes on to its greeting.
  4. proxy_from changed to 127.0.0.2 only, then SIGHUP: the reload says
     it applied proxy_from on both listeners; a header from 127.0.0.1 is
     then refused (event=proxy_refused), one from 127.0.0.2 greeted.
"""

import os
import re
import shutil
import signal
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

MSG = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: TLVs\r\n\r\nhi\r\n"

HAPROXY_CFG = """\
global
    maxconn 100

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend ids
    bind 127.0.0.1:{p1}
    unique-id-format %{{+X}}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
    log stdout format raw local0
    log-format "hapid=%ID client=%ci:%cp"
    default_backend mw_ids

backend mw_ids
    server mw 127.0.0.1:{smtp} send-proxy-v2 proxy-v2-options crc32c,unique-id

frontend ends
    bind 127.0.0.1:{p2} ssl crt {pem}
    default_backend mw_ends

backend mw_ends
    server mw 127.0.0.1:{smtp} send-proxy-v2 proxy-v2-options ssl,crc32c

frontend ends2
    bind 127.0.0.1:{p3} ssl crt {pem}
    default_backend mw_ends2

backend mw_ends2
    server mw 127.0.0.1:{smtps} send-proxy-v2 proxy-v2-options ssl,crc32c
"""

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
TCP4 = bytes([127, 0, 0, 9, 127, 0, 0, 1]) + (40000).to_bytes(2, "big") + \
    (25).to_bytes(2, "big")


def tlv(t, value):
    return bytes([t]) + len(value).to_bytes(2, "big") + value


def v2(body):
    return SIG + b"\x21\x11" + len(body).to_bytes(2, "big") + body


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def with_crc(body, right=True):
    """A TCP4 header with body's TLVs and a CRC32C TLV over it all."""
    h = v2(TCP4 + body + tlv(0x03, bytes(4)))
    crc = crc32c(h) ^ (0 if right else 1)
    return h[:-4] + crc.to_bytes(4, "big")


def log_wait(mw, pattern, what):
    found = []

    def seen():
        found[:] = re.findall(pattern, mw.log(), re.M)
        return found
    mwtest.check(mwtest.wait_for(seen, 10), "%s: no %r in the log:\n%s"
                 % (what, pattern, mw.log()[-2000:]))
    return found


def main():
    if not shutil.which("haproxy"):
        mwtest.skip("haproxy is not installed")
    with mwtest.Env("proxy_in_tlv") as env:
        be = env.recorder(xclient=True)
        base = {"forward": "127.0.0.1:%d" % be.port, "client_identity": "xclient",
                "accept_proxy": "yes", "proxy_from": "127.0.0.1",
                "timeout_handshake": "3"}
        prom = mwtest.metrics_file(env)
        mw = env.mailward(listeners={
            "smtp": dict(base, accept_tls="starttls"),
            "smtps": dict(base, accept_tls="implicit"),
        }, globals={"metrics_file": prom})
        pem = env.path("haproxy.pem")
        with open(pem, "w") as f:
            for part in ("server.pem", "server.key"):
                with open(os.path.join(env.certs, part)) as src:
                    f.write(src.read())
        p1, p2, p3 = mwtest.free_port(), mwtest.free_port(), mwtest.free_port()
        cfg = env.path("haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(p1=p1, p2=p2, p3=p3, pem=pem, smtp=mw.port("smtp"),
                                       smtps=mw.port("smtps")))
        haplog = env.path("haproxy.log")
        hap = env.spawn(["haproxy", "-db", "-f", cfg], log=haplog)
        mwtest.wait_listening([p1, p2, p3], 10, alive=lambda: hap.poll() is None)
        ctx = mwtest.ssl_client_context(env)

        # 1. unique-id and crc32c: delivered, the id logged as HAProxy's.
        s = smtplib.SMTP("127.0.0.1", p1, local_hostname="client.test", timeout=20,
                         source_address=("127.0.0.5", 0))
        ip, cport = s.sock.getsockname()[:2]
        s.starttls(context=ctx)
        s.ehlo("client.test")
        mwtest.eq(s.sendmail("a@sender.test", ["b@rcpt.test"], MSG), {}, "refused recipients")
        s.quit()
        m = be.wait_messages(1, 10)[-1]
        mwtest.eq(m.data, MSG, "message bytes through the ids frontend")
        mwtest.eq((m.xclient.get("ADDR"), m.xclient.get("PORT")), (ip, str(cport)),
                  "XCLIENT through the ids frontend")
        got = log_wait(mw, r"event=proxy client=%s:%d via=127\.0\.0\.1:\d+ "
                       r"unique_id=(\S+) crc32c=yes$" % (re.escape(ip), cport), "ids")
        hapids = []

        def hap_logged():
            with open(haplog, errors="replace") as f:
                hapids[:] = re.findall(r"hapid=(\S+) client=%s:%d" % (re.escape(ip), cport),
                                       f.read())
            return hapids
        mwtest.check(mwtest.wait_for(hap_logged, 10), "HAProxy logged no id for %s:%d"
                     % (ip, cport))
        print("unique id: mailward %s, HAProxy %s" % (got[0], hapids[0]))
        mwtest.eq(got[0], hapids[0], "the unique id mailward logged")

        # 2. The balancer ended the client's TLS: 421, nothing delivered.
        for what, port in (("STARTTLS listener", p2), ("implicit-TLS listener", p3)):
            try:
                s = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="client.test",
                                     timeout=20, context=ctx)
                s.close()
                mwtest.fail("%s: a session began behind a balancer that ended TLS" % what)
            except smtplib.SMTPConnectError as e:
                print("%s: %d %s" % (what, e.smtp_code, e.smtp_error.decode()))
                mwtest.eq(e.smtp_code, 421, "%s: greeting" % what)
                mwtest.check(e.smtp_error.startswith(b"4.7.0 ") and
                             b"TLS must reach this server" in e.smtp_error,
                             "%s: greeting %r" % (what, e.smtp_error))
        ended = log_wait(mw, r"event=proxy_tls_ended tls=(\S+) ", "balancer TLS")
        mwtest.eq(ended, ["TLSv1.3", "TLSv1.3"], "event=proxy_tls_ended lines")
        mwtest.eq(len(be.messages), 1, "messages at the backend")

        # 3. Headers by hand.
        for what, hdr, reason in (
                ("CRC32C changed", with_crc(tlv(0x05, b"x")), "v2: CRC32C does not match"),
                ("TLV past the end", v2(TCP4 + b"\x05\x00\x09abc"),
                 "v2: TLV of type 0x05 overruns the header")):
            if what == "CRC32C changed":
                hdr = hdr[:-1] + bytes([hdr[-1] ^ 1])
            c = Client(mw.port("smtp"))
            c.send(hdr + b"EHLO client.test\r\n")
            closed, got = c.wait_closed(5)
            mwtest.eq((closed, got), (True, b""), what)
            c.close()
            log_wait(mw, r'event=proxy_failed reason="%s"' % re.escape(reason), what)
        c = Client(mw.port("smtp"))
        c.send(with_crc(tlv(0xea, b"\x01vpce-08d2bf15fac5001c9") + tlv(0x05, b"a b\n")))
        r = c.reply()
        mwtest.eq(r.code, 220, "greeting after a header with an AWS endpoint TLV")
        c.close()
        log_wait(mw, r"event=proxy client=127\.0\.0\.9:40000 via=127\.0\.0\.1:\d+ "
                 r"unique_id=0x6120620a endpoint=aws:vpce-08d2bf15fac5001c9 crc32c=yes$",
                 "AWS endpoint")
        mwtest.check(hap.poll() is None, "HAProxy died")

        # 4. A reload changes the balancers.
        mwtest.write_config(env, mw.conf, {
            name: dict(mw.listeners[name], proxy_from="127.0.0.2") for name in ("smtp",
                                                                               "smtps")},
            {"metrics_file": prom}, mw.alert_log)
        before = mw.log().count("event=reload_config ")
        os.kill(mw.pid, signal.SIGHUP)
        got = log_wait(mw, r'event=reload_config file=\S+ applied="([^"]*)" '
                       r'restart_needed="([^"]*)"', "reload")
        mwtest.check(len(got) == before + 1, "event=reload_config lines: %r" % got)
        mwtest.eq(got[-1], ("[smtp] proxy_from [smtps] proxy_from", ""),
                  "applied and restart_needed")
        refused = mw.log().count("event=proxy_refused")
        c = Client(mw.port("smtp"))
        c.send(v2(TCP4))
        closed, got = c.wait_closed(5)
        mwtest.eq((closed, got), (True, b""), "from 127.0.0.1, no longer in proxy_from")
        c.close()
        mwtest.check(mwtest.wait_for(
            lambda: mw.log().count("event=proxy_refused") == refused + 1, 5),
            "no event=proxy_refused after the reload")
        c = Client(mw.port("smtp"), source="127.0.0.2")
        c.send(v2(TCP4))
        mwtest.eq(c.reply().code, 220, "greeting for a header from 127.0.0.2")
        c.close()
        mw.stop()
        metrics = mwtest.read_metrics(prom)
        mwtest.eq(metrics.get('mailward_sessions_refused_total{reason="balancer_tls"}'), 2.0,
                  "refused sessions, reason balancer_tls")
    print("ok")


if __name__ == "__main__":
    main()
