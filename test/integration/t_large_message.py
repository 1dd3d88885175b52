#!/usr/bin/python3
"""Memory per session is bounded (invariant 4).

1. A 50 MB message (random printable lines of 998 characters) sent with
   smtplib through STARTTLS reaches an aiosmtpd backend byte-exact (sha256)
   and mailward's peak RSS (VmHWM) stays under the limit.
2. The same through a backend that reads slowly: a client that writes
   faster than the backend reads must be met with backpressure, so the peak
   RSS still stays under the limit.

The fast backend is mwtest's recorder (aiosmtpd) without its 32 MiB
data_size_limit.  aiosmtpd cannot be made to read slowly, so the slow one is
a fixture defined here, not real software.

AddressSanitizer keeps freed memory in a 256 MB quarantine, so the RSS of a
sanitized build grows with every byte ever allocated; the quarantine is made
small for this test (ASAN_OPTIONS) so that RSS measures what mailward holds.
"""

import base64
import hashlib
import os
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import rss_kb  # noqa: E402

NAME = "mw.test.example"
SIZE = 50 * 1000 * 1000
LIMIT_KB = 64 * 1024


def big_message():
    raw = base64.b64encode(os.urandom(SIZE * 3 // 4))   # no '.' in the alphabet
    lines = [raw[i:i + 998] for i in range(0, len(raw), 998)]
    head = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: large\r\n\r\n"
    return head + b"\r\n".join(lines) + b"\r\n"


class SlowBackend:
    """Fixture: a minimal SMTP server that reads DATA at about 5 MB/s through
    a small receive buffer, un-stuffs nothing (the message has no leading
    dots) and hashes what it read."""

    def __init__(self, rate=5_000_000):
        self.rate = rate
        self.got = []
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        buf = b""
        try:
            s.sendall(b"220 slow.test ESMTP fixture\r\n")
            while True:
                while b"\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                verb = line.split(b" ")[0].upper()
                if verb == b"EHLO":
                    s.sendall(b"250-slow.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    return
                elif verb == b"DATA":
                    s.sendall(b"354 go ahead\r\n")
                    h, n, buf = self._data(s, buf)
                    self.got.append((n, h))
                    s.sendall(b"250 2.0.0 OK slow\r\n")
                else:
                    s.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            s.close()

    def _data(self, s, pending):
        """Read to CRLF.CRLF slowly; returns (sha256, length, bytes after it).
        (An empty message, ".\r\n" at once, is not handled: none is sent.)"""
        h = hashlib.sha256()
        n = 0
        step = 64 * 1024
        pause = step / self.rate
        while True:
            i = pending.find(b"\r\n.\r\n")
            if i >= 0:
                h.update(pending[:i + 2])
                return h.hexdigest(), n + i + 2, pending[i + 5:]
            cut = max(0, len(pending) - 4)      # the rest may begin the end marker
            h.update(pending[:cut])
            n += cut
            pending = pending[cut:]
            time.sleep(pause)
            chunk = s.recv(step)
            if not chunk:
                raise OSError("connection lost in DATA")
            pending += chunk

    def stop(self):
        self.stopping = True
        self.ls.close()


def send(env, port, msg):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=120)
    s.ehlo()
    s.starttls(context=mwtest.ssl_client_context(env))
    s.ehlo()
    t0 = time.monotonic()
    refused = s.sendmail("a@sender.test", ["b@rcpt.test"], msg)
    dt = time.monotonic() - t0
    s.quit()
    return refused, dt


def sample_rss(pid, stop, peak):
    while not stop.is_set():
        try:
            v = rss_kb(pid, "VmRSS")
            if v and v > peak[0]:
                peak[0] = v
        except OSError:
            return
        time.sleep(0.05)


def main():
    # mwtest only sets ASAN_OPTIONS when it is unset: keep its defaults.
    opts = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    os.environ["ASAN_OPTIONS"] = opts + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=256"
    msg = big_message()
    want = (len(msg), hashlib.sha256(msg).hexdigest())
    failures = []
    with mwtest.Env("large_message") as env:
        fast = env.recorder(data_size_limit=None)
        slow = SlowBackend()
        try:
            mw = env.mailward(listeners={
                "fast": {"accept_tls": "starttls", "hostname": NAME,
                         "forward": "127.0.0.1:%d" % fast.port},
                "slow": {"accept_tls": "starttls", "hostname": NAME,
                         "forward": "127.0.0.1:%d" % slow.port},
            })
            base = rss_kb(mw.pid, "VmRSS")
            # At most 64 MB, and at most 32 MB over the start: mailward buffering a
            # whole 50 MB message (less the few MB in kernel socket buffers) must
            # fail, even when it started small.
            limit = min(LIMIT_KB, base + 32 * 1024)
            print("mailward RSS at start: %d kB, limit %d kB" % (base, limit))
            for what, port, be in (("fast backend", mw.port("fast"), fast),
                                   ("slow backend", mw.port("slow"), slow)):
                stop, peak = threading.Event(), [0]
                t = threading.Thread(target=sample_rss, args=(mw.pid, stop, peak), daemon=True)
                t.start()
                try:
                    refused, dt = send(env, port, msg)
                except smtplib.SMTPException as e:
                    failures.append("%s: smtplib: %r" % (what, e))
                    refused, dt = None, 0
                stop.set()
                t.join()
                hwm = rss_kb(mw.pid, "VmHWM")
                print("%s: %.1f s, %.1f MB/s, RSS peak %d kB (sampled), VmHWM %d kB"
                      % (what, dt, len(msg) / 1e6 / max(dt, 1e-3), peak[0], hwm))
                if refused:
                    failures.append("%s: refused %r" % (what, refused))
                time.sleep(0.5)
                got = be.got if be is slow else \
                    [(len(m.data), hashlib.sha256(m.data).hexdigest()) for m in be.messages]
                if got[-1:] != [want]:
                    failures.append("%s: backend got %r, sent (%d, %s)"
                                    % (what, got, want[0], want[1]))
                if hwm > limit:
                    failures.append("%s: mailward VmHWM %d kB > %d kB" % (what, hwm, limit))
            mw.stop()
        finally:
            slow.stop()
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d large message checks failed" % len(failures))
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
