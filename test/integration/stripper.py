#!/usr/bin/python3
"""stripper: a TEST FIXTURE, not real software. A man-in-the-middle TCP proxy
that sits at a destination's address and forwards to the real server,
attacking STARTTLS the ways that have been seen on real networks:

    stripper.py --listen ADDR:PORT --to ADDR:PORT --mode-file FILE
                [--events FILE] [--ready FILE]

The mode is read from --mode-file for every new connection:
  pass    forward everything untouched
  mask    rewrite "STARTTLS" in the server's EHLO reply to "XXXXXXXA" (the
          same length, as some firewalls do)
  strip   delete the STARTTLS line from the EHLO reply (when it was the last
          line, the line before it becomes the last: "250 ")
  refuse  answer the client's STARTTLS with "454 4.7.0 TLS not available"
          itself; the server never sees the command
  inject  pass STARTTLS on and send "250 injected\\r\\n" right behind the
          server's 220 to it, in the same segment
Once STARTTLS went through (or in pass mode) bytes are forwarded untouched in
both directions. Rewriting applies to the server's replies before STARTTLS.

--events FILE gets one line per thing it did ("accept", "mask", "strip",
"refuse", "inject", "close"); --ready FILE is created once it listens.
Used by mwtest.NetEnv.stripper() inside a destination network namespace.
"""

import argparse
import os
import re
import signal
import socket
import sys
import threading

STARTTLS_CAP = re.compile(rb"^250([- ])STARTTLS[ \t]*\r?\n$", re.I)


class Conn:
    def __init__(self, client, upstream, mode, events):
        self.c, self.s, self.mode, self.events = client, upstream, mode, events
        self.starttls_sent = False   # the client's STARTTLS went to the server
        self.raw = mode == "pass"    # forwarding untouched both ways
        self.lock = threading.Lock()

    def event(self, what):
        self.events(what)

    def run(self):
        t = threading.Thread(target=self.server_to_client, daemon=True)
        t.start()
        self.client_to_server()
        t.join()
        for sock in (self.c, self.s):
            try:
                sock.close()
            except OSError:
                pass
        self.event("close")

    def _shut(self):
        for sock in (self.c, self.s):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # Client (mailward) -> server: lines until STARTTLS, then raw.
    def client_to_server(self):
        buf = b""
        try:
            while True:
                data = self.c.recv(65536)
                if not data:
                    break
                if self.raw or self.starttls_sent:
                    self.s.sendall(data)
                    continue
                buf += data
                while b"\n" in buf and not self.starttls_sent:
                    line, buf = buf.split(b"\n", 1)
                    line += b"\n"
                    if line.rstrip(b"\r\n").upper() == b"STARTTLS":
                        if self.mode == "refuse":
                            self.event("refuse")
                            self.c.sendall(b"454 4.7.0 TLS not available due to local problem\r\n")
                            continue
                        self.starttls_sent = True
                    self.s.sendall(line)
                if self.starttls_sent and buf:
                    self.s.sendall(buf)
                    buf = b""
        except OSError:
            pass
        self._shut()

    # Server -> client (mailward): reply lines rewritten until the reply to
    # STARTTLS, then raw.
    def server_to_client(self):
        buf = b""
        pending = []     # lines of a multi-line reply being rewritten
        raw = self.raw
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    break
                if raw:
                    self.c.sendall(data)
                    continue
                buf += data
                while b"\n" in buf and not raw:
                    line, buf = buf.split(b"\n", 1)
                    line += b"\n"
                    if self.starttls_sent:
                        # The reply to STARTTLS.
                        out = line
                        if self.mode == "inject" and line.startswith(b"220"):
                            out = line + b"250 injected\r\n"
                            self.event("inject")
                        self.c.sendall(out)
                        raw = True
                        break
                    pending.append(line)
                    if len(line) >= 4 and line[3:4] == b"-":
                        continue          # the reply goes on
                    self.c.sendall(b"".join(self.rewrite(pending)))
                    pending = []
                if raw and buf:
                    self.c.sendall(buf)
                    buf = b""
        except OSError:
            pass
        self._shut()

    def rewrite(self, lines):
        out = []
        for i, line in enumerate(lines):
            m = STARTTLS_CAP.match(line)
            if m and i > 0:
                if self.mode == "mask":
                    self.event("mask")
                    out.append(b"250" + m.group(1) + b"XXXXXXXA\r\n")
                    continue
                if self.mode == "strip":
                    self.event("strip")
                    if m.group(1) == b" " and out:
                        out[-1] = out[-1][:3] + b" " + out[-1][4:]
                    continue
            out.append(line)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--mode-file", required=True)
    ap.add_argument("--events")
    ap.add_argument("--ready")
    a = ap.parse_args()
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.to.rsplit(":", 1)
    lock = threading.Lock()

    def events(what):
        print("stripper: %s" % what, flush=True)
        if a.events:
            with lock, open(a.events, "a") as f:
                f.write(what + "\n")

    ls = socket.socket(socket.AF_INET6 if ":" in lhost else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((lhost, int(lport)))
    ls.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.ready:
        open(a.ready, "w").close()
    print("stripper: a test fixture on %s, forwarding to %s" % (a.listen, a.to), flush=True)
    while True:
        c, peer = ls.accept()
        with open(a.mode_file) as f:
            mode = f.read().strip()
        try:
            s = socket.create_connection((thost, int(tport)), timeout=10)
            s.settimeout(None)
        except OSError as e:
            events("upstream %s: %s" % (a.to, e))
            c.close()
            continue
        events("accept %s:%d mode=%s" % (peer[0], peer[1], mode))
        threading.Thread(target=Conn(c, s, mode, events).run, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
