"""Raw SMTP client for integration tests that must send exact bytes.

smtplib normalises what it sends (line endings, dot-stuffing, one command at a
time), so tests of pipelining, STARTTLS injection, smuggling and line limits
talk to mailward through this small socket client instead.  It is a test
fixture, not real software: scenarios that only need a well-behaved client use
smtplib.

Also here: polling helpers for the alert log and for "the backend saw nothing
from this session" (the recorder also sees mailward's capability probes,
EHLO <our hostname> + QUIT, which are not session traffic).
"""

import socket
import ssl
import time


class Reply:
    """One SMTP reply: code (int, or None when the peer closed first), the
    text of each line (without "ddd-"), and the raw lines."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.raw)

    def starts(self, prefix):
        """True if the last line (the one with the space) starts with prefix,
        e.g. "530 5.7.0"."""
        return bool(self.raw) and self.raw[-1].startswith(prefix)

    def __repr__(self):
        return "<Reply %r>" % (self.text if self.raw else "EOF")


class Closed(Exception):
    pass


class Client:
    def __init__(self, port, host="127.0.0.1", timeout=10, source=None,
                 tls=None, server_hostname="localhost"):
        """Connect; with tls (an SSLContext) do implicit TLS at once."""
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout,
                                             source_address=src)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.timeout = timeout
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock,
                                        server_hostname=server_hostname)

    # -- low level ---------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        """Read once. Returns False on EOF or reset. Raises socket.timeout."""
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except ssl.SSLError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply line within %ss" % timeout)
            if not self._fill(left):
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    # -- replies -----------------------------------------------------------
    def reply(self, timeout=None):
        """Read one (possibly multi-line) reply. On EOF before any line:
        Reply(None, [], []). Raises socket.timeout if nothing comes."""
        timeout = self.timeout if timeout is None else timeout
        lines, raw = [], []
        while True:
            line = self._line(timeout)
            if line is None:
                return Reply(None, lines, raw)
            raw.append(line)
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                return Reply(code, lines, raw)

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n" if isinstance(line, str) else line)
        return self.reply(timeout)

    def pending(self, wait=0.5):
        """Everything the server sends within `wait` seconds (no EOF needed)."""
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                if not self._fill(max(0.01, end - time.monotonic())):
                    break
            except socket.timeout:
                break
        data, self.buf = self.buf, b""
        return data

    def wait_closed(self, timeout):
        """Read until the server closes. Returns (closed, bytes received)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                data, self.buf = self.buf, b""
                return False, data
            try:
                if not self._fill(left):
                    data, self.buf = self.buf, b""
                    return True, data
            except socket.timeout:
                continue

    # -- TLS ---------------------------------------------------------------
    def starttls(self, ctx, server_hostname="localhost"):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS answered %r" % r)
        if self.buf:
            raise AssertionError("server sent bytes after its 220 to STARTTLS: %r" % self.buf)
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def ehlo_keywords(reply):
    """EHLO capability keywords (upper case), first line (the name) excluded."""
    return [l.split(" ")[0].upper() for l in reply.lines[1:]]


# -- mailward observations ------------------------------------------------
def wait_alerts(mw, event, n=1, timeout=5.0):
    """Alerts of type `event`, waiting up to timeout for at least n of them."""
    end = time.monotonic() + timeout
    while True:
        got = [a for a in mw.alerts() if a.get("event") == event]
        if len(got) >= n or time.monotonic() > end:
            return got
        time.sleep(0.1)


def _as_str(c):
    return c.decode("utf-8", "replace") if isinstance(c, (bytes, bytearray)) else str(c)


def session_commands(be, our_hostname):
    """Commands the recorder received, minus mailward's capability probes
    (EHLO/HELO <our_hostname> and QUIT)."""
    out = []
    for c in be.commands:
        s = _as_str(c).rstrip("\r\n")
        verb, _, arg = s.partition(" ")
        verb = verb.upper()
        if verb in ("EHLO", "HELO") and arg.strip().lower() == our_hostname.lower():
            continue
        if verb == "QUIT":
            continue
        out.append(s)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid, field="VmHWM"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None
