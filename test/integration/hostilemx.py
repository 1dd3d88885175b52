"""hostilemx: a TEST FIXTURE, not real software. A destination mail server
that misbehaves on purpose (drips its replies, sends endless or malformed
lines, hangs up mid-message...), which real servers will not do for a test.

    mx = HostileMX(net, handler, addr="192.0.2.10", port=25)

listens at addr:port inside addr's namespace (a NetEnv destination) and runs
handler(peer) in a thread for each connection mailward makes. A Peer
speaks just enough SMTP for a test to reach the misbehaviour it is about:

    peer.send(b"220 hi\\r\\n")       raw bytes (ignores a peer that is gone)
    peer.drip(data, interval, stop)  one byte every interval seconds, until
                                     data is sent, the peer is gone or stop()
    peer.line(timeout)               the next line mailward sent (bytes, CRLF
                                     stripped), or None at its end
    peer.ehlo(caps)                  read EHLO, answer 250 with caps
    peer.envelope()                  MAIL, RCPT(s), DATA: 250s, then 354
    peer.message()                   the message text up to its dot
    peer.starttls(cert, key)         read STARTTLS, 220, TLS as the server
    peer.tls_server(cert, key)       TLS as the server, now

Every byte mailward sent is kept (peer.received, and mx.received() for all
sessions; inside TLS, what was decrypted); mx.sessions counts connections, mx.ended() when each ended.
Stopped (listener and connections closed) when the environment is left.
"""

import socket
import ssl
import threading
import time


class Peer:
    def __init__(self, sock, mx):
        self.sock, self.mx = sock, mx
        self.buf = b""
        self.received = b""
        self.gone = False

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.gone = True
            return False

    def drip(self, data, interval=1.0, stop=lambda: False):
        """Send data one byte at a time; False once the peer is gone."""
        for i in range(len(data)):
            if stop() or not self.send(data[i:i + 1]):
                return False
            time.sleep(interval)
        return True

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise
        except (OSError, ssl.SSLError):
            d = b""
        if not d:
            self.gone = True
        self.received += d
        with self.mx.lock:
            self.mx._received.append(d)
        return d

    def line(self, timeout=30):
        while b"\n" not in self.buf:
            if self.gone:
                return None
            d = self._recv(timeout)
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def wait_closed(self, timeout=60):
        """True once mailward has closed the connection (it may send first)."""
        end = time.monotonic() + timeout
        while not self.gone and time.monotonic() < end:
            try:
                d = self._recv(max(0.01, end - time.monotonic()))
            except socket.timeout:
                break
            self.buf += d
        return self.gone

    def expect(self, verb, timeout=30):
        ln = self.line(timeout)
        if ln is None or not ln.upper().startswith(verb.encode()):
            raise AssertionError("hostilemx: expected %s, got %r" % (verb, ln))
        return ln

    def ehlo(self, caps=(b"PIPELINING", b"8BITMIME"), name=b"mx.dest.test"):
        self.expect("EHLO")
        lines = [name] + list(caps)
        out = b"".join(b"250%s%s\r\n" % (b"-" if i < len(lines) - 1 else b" ", c)
                       for i, c in enumerate(lines))
        self.send(out)

    def envelope(self):
        """MAIL, RCPTs and DATA, each answered when it comes."""
        self.expect("MAIL")
        self.send(b"250 2.1.0 Ok\r\n")
        while True:
            ln = self.line()
            if ln is None:
                raise AssertionError("hostilemx: closed in the envelope")
            if ln.upper().startswith(b"RCPT"):
                self.send(b"250 2.1.5 Ok\r\n")
                continue
            if ln.upper() == b"DATA":
                self.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                return
            raise AssertionError("hostilemx: %r in the envelope" % ln)

    def message(self):
        """The message's lines, up to (not with) its dot; None if cut short."""
        lines = []
        while True:
            ln = self.line()
            if ln is None:
                return None
            if ln == b".":
                return lines
            lines.append(ln)

    def starttls(self, cert, key):
        self.expect("STARTTLS")
        self.send(b"220 2.0.0 Ready to start TLS\r\n")
        self.tls_server(cert, key)

    def tls_server(self, cert, key, ctx=None):
        """A TLS handshake as the server (Python's ssl), now."""
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        self.sock.settimeout(30)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.buf = b""


class HostileMX:
    def __init__(self, net, handler, addr="192.0.2.10", port=25):
        self.handler = handler
        self.lock = threading.Lock()
        self.sessions = 0
        self.peers = []
        self._received = []
        self._ended = []
        self.errors = []
        self.stopping = False
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with net.inside(net.ns_of(addr)):
            self.ls = socket.socket(family, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((addr, port))
        self.ls.listen(16)
        print("hostilemx: a test fixture at %s:%d" % (addr, port), flush=True)
        threading.Thread(target=self._accept, daemon=True).start()
        net.env.on_exit(self.stop)

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.sessions += 1
                peer = Peer(c, self)
                self.peers.append(peer)
            threading.Thread(target=self._run, args=(peer,), daemon=True).start()

    def _run(self, peer):
        try:
            self.handler(peer)
        except Exception as e:          # noqa: BLE001 (reported by the test)
            if not self.stopping:
                self.errors.append(repr(e))
                print("hostilemx: handler: %r" % e, flush=True)
        finally:
            with self.lock:
                self._ended.append(time.monotonic())

    def received(self):
        with self.lock:
            return b"".join(self._received)

    def ended(self):
        with self.lock:
            return list(self._ended)

    def stop(self):
        self.stopping = True
        try:
            self.ls.close()
        except OSError:
            pass
        for p in list(self.peers):
            try:
                p.sock.close()
            except OSError:
                pass
