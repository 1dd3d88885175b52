#!/usr/bin/python3
"""forward_verify = dane: what the smarthost sends while its TLSA records
are looked up is not read, so it cannot pile up in mailward's memory.

The handshake comes before the DANE lookup (the certificate is judged by
its records), so whoever answers at the smarthost's address, a man in the
middle with a certificate of its own included, has a TLS session with
mailward during the lookup. Two fixtures, in network namespaces:

  192.0.2.20:465  the "smarthost" (this file run with --flood): completes
                  the handshake and then sends as fast as mailward takes
                  it, counting the bytes
  192.0.2.53:53   a name server that never answers (this file run with
                  --silent): each DNSSEC lookup waits out its timeout

mailward (one process, in the sender; smtp.flood.test is in the sender's
/etc/hosts, as the start-up resolution of forward needs it): a listener
with accept_tls none, forward smtp.flood.test:465, forward_tls implicit,
forward_verify dane. smtplib connects, says EHLO and MAIL, which waits
for the lookup: 421 (the lookup failed: no DANE, and the certificate is
not one the CA signed). Meanwhile mailward's peak RSS
(VmHWM) grows by less than 16 MB, and the smarthost could send little more
than socket buffers hold. Before, mailward read all of it: hundreds of
megabytes in a few seconds."""

import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SH, RES = "192.0.2.20", "192.0.2.53"
NAME = "smtp.flood.test"


def flood(addr, cert, key, count_file):
    """The smarthost fixture: TLS, then bytes until the peer goes away."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.create_server((addr, 465))
    chunk = b"X" * 65536
    while True:
        raw, _ = srv.accept()
        sent = 0
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
            conn.settimeout(20)
            while True:
                conn.sendall(chunk)
                sent += len(chunk)
                with open(count_file + ".tmp", "w") as f:
                    f.write(str(sent))
                os.rename(count_file + ".tmp", count_file)
        except (OSError, ssl.SSLError):
            pass
        raw.close()


def silent(addr):
    """The name server fixture: takes queries, answers none."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, 53))
    t = socket.create_server((addr, 53))

    def tcp():
        held = []
        while True:
            held.append(t.accept()[0])
    threading.Thread(target=tcp, daemon=True).start()
    while True:
        u.recvfrom(4096)


def hwm_kb(pid):
    return int(mwtest.proc_status(pid)["VmHWM"].split()[0])


def main():
    with mwtest.Env("wrap_dane_flood") as env:
        net = env.netns(hosts=(SH, RES))
        cert = net.cert(NAME, kind="untrusted")
        count = env.path("flood-sent")
        me = os.path.abspath(__file__)
        ns = net.spawn(net.ns_of(RES), [sys.executable, me, "--silent", RES],
                       log=env.path("silent.log"))
        fl = net.spawn(net.ns_of(SH), [sys.executable, me, "--flood", SH, cert[0], cert[1],
                                       count], log=env.path("flood.log"))
        resolv = net.resolver(RES, options="trust-ad edns0 timeout:4 attempts:1")
        with open(os.path.join(os.path.dirname(resolv), "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n%s %s\n" % (SH, NAME))
        missing = mwtest.wait_listening([465], 10, alive=lambda: fl.poll() is None, pid=fl.pid)
        mwtest.check(not missing, "the smarthost fixture did not start")
        # Its UDP socket is bound before TCP listens: a first query sent
        # earlier would fail at once, and that failure is cached.
        missing = mwtest.wait_listening([53], 10, alive=lambda: ns.poll() is None, pid=ns.pid)
        mwtest.check(not missing, "the name server fixture did not start")
        mw = env.mailward(listeners={"wrap": {
            "listen": "127.0.0.1:%d" % mwtest.free_port(), "accept_tls": "none",
            "require_tls": "no", "forward": NAME + ":465", "forward_tls": "implicit",
            "forward_verify": "dane", "forward_ca": os.path.join(env.certs, "ca.pem"),
            "timeout_greeting": "30"}}, netns=net.sender)
        before = hwm_kb(mw.pid)
        t0 = time.monotonic()
        s = net.smtp("127.0.0.1", mw.port("wrap"), timeout=40)
        s.ehlo()
        try:
            reply = s.mail("legacy@lan.test")
        except Exception as e:  # the 421 may come as the connection's end
            reply = (None, repr(e))
        took = time.monotonic() - t0
        sent = int(open(count).read()) if os.path.exists(count) else 0
        after = hwm_kb(mw.pid)
        print("MAIL answered after %.1f s: %r; the smarthost sent %d bytes; mailward's "
              "VmHWM %d -> %d kB" % (took, reply, sent, before, after), flush=True)
        mwtest.eq(reply[0], 421, "reply to MAIL (the lookup failed, the certificate is "
                  "nobody's CA's)")
        s.close()
        mwtest.check(took >= 3, "MAIL was answered after %.1f s: the lookup did not wait "
                     "on the silent name server" % took)
        mwtest.check(sent > 0, "the smarthost fixture sent nothing: no TLS session?\n%s"
                     % mw.log()[-3000:])
        mwtest.check(after - before < 16 * 1024,
                     "mailward's peak RSS grew by %d kB while the smarthost sent %d bytes"
                     % (after - before, sent))
        mwtest.check(sent < 64 << 20, "the smarthost could send %d bytes during the lookup: "
                     "mailward kept reading" % sent)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--flood":
        flood(*sys.argv[2:6])
    elif len(sys.argv) > 1 and sys.argv[1] == "--silent":
        silent(sys.argv[2])
    else:
        main()
