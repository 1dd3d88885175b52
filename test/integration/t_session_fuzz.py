#!/usr/bin/python3
"""Seeded random client sessions through mailward, checked against real
backends.

The parsers have libFuzzer harnesses (test/fuzz/); this drives the relay's
session state machine as a whole. Each session is generated from one seed:
EHLO/HELO, MAIL and RCPT (valid and not), RSET, NOOP, VRFY, HELP, unknown
verbs, lines with a NUL, a bare CR or a bare LF, lines too long, DATA
(answered before the message is sent, or pipelined blind behind it) with
bodies holding lines that start with a dot, lines at and past the length
limit, bare CR and LF, NULs and transactions hidden behind a false end of
data, BDAT chunks (size 0, LAST, "BDAT 0 LAST", the chunk holding a
transaction after CRLF.CRLF) and BDAT lines that cannot be read, STARTTLS,
pipelined groups, QUIT early, a half-close (between commands, or inside a
BDAT chunk) or an abrupt close; every byte stream is cut at random points
across sends.

Listeners, each plaintext-capable so that a client can half-close:
  rec    accept_tls = none, to aiosmtpd (the recorder: no CHUNKING, so BDAT
         is refused and its chunk skipped; messages kept byte-exact)
  st     STARTTLS offered, not required, to the recorder
  pf     accept_tls = none, to a private Postfix (CHUNKING, XCLIENT)
  pftls  STARTTLS required, to the same Postfix

What is checked:
  1. Every message a backend holds carries (as its first X-Fuzz header) the
     marker of a message the client sent and got a 250 for at its end, or
     one whose end the client sent but never read an answer to because it
     closed the connection itself. Nothing hidden inside a message or a
     chunk, nothing the client was told failed, nothing it never finished.
  2. Every message that got a 250 reaches the backend exactly once, for
     each recipient that got a 250 in its transaction; the recorder's copy
     is byte-exact (dot-stuffing undone); Postfix's Maildir copy ends with
     the bytes sent as Postfix stores them (CRLF and the CRs before it as
     LF, a bare CR as a space): neither real backend keeps a BDAT message
     byte for byte (aiosmtpd has no CHUNKING), so a BDAT body is checked
     only that far. A message mailward must refuse (a bare CR or LF, a
     line too long) never gets a 250.
  3. The client gets exactly one well-formed reply per command that wants
     one, in order; the only early end is the server's close right after a
     421, a 521 to an unreadable BDAT line (or the 530 that refused it),
     the 554 to commands pipelined behind STARTTLS (or its 220, when they
     came after it), or the 221 to QUIT.
     After QUIT or a half-close, nothing more comes, then the close; a
     half-close inside a chunk still gets every reply owed before that
     chunk's BDAT (that one may or may not come). Not checked after a
     TLS write failed: Python's TLS socket reads nothing more then.
  4. mailward (the sanitizer build) stays up and logs no sanitizer report.

A failing session prints its seed and its byte stream (the sends, as cut)
with the replies; every session's transcript is written to the test's
directory (kept on failure). Reproduce one with MAILWARD_FUZZ_SEED=<seed>:
the steps, the cuts and the pauses come from the seed; what depends on
timing (which read a cut lands in) may differ.

Environment: MAILWARD_FUZZ_SEED=S (the first seed, default 1),
MAILWARD_FUZZ_SESSIONS=N (how many seeds from S; default DEFAULT_SESSIONS,
or 1 when only the seed is given). The default run is deterministic
(fixed seeds) and takes well under a minute here.
"""

import os
import random
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

DEFAULT_SESSIONS = 150
REPLY_TIMEOUT = 10
MAX_LINE = 512           # mailward's default max_line (CRLF included)
SPLIT_MAX = 12288        # its line splitter's size (RELAY_AUTH_LINE_MAX)
MAX_TEXT_LINE = 1000     # its default max_text_line (CRLF included)

REC_RCPTS = ("b@rcpt.test", "c@rcpt.test", "user@test.example")
PF_RCPTS = ("user@test.example", "alice@test.example", "bob@test.example",
            "carol@test.example")
# "user@" is left to Postfix: aiosmtpd (1.4) prints a traceback for it.
PF_BAD_RCPTS = ("nosuch@test.example", "<bad@test.example", "", "user@", "<>")
REC_BAD_RCPTS = ("nosuch@test.example", "<bad@test.example", "", "<>")
SENDERS = ("<a@sender.test>", "<>", "<a@sender.test> BODY=8BITMIME",
           "<a@sender.test> SIZE=%d" % 100000)
BAD_SENDERS = ("a@sender.test>", "<a@sender.test", "", "<a@sender.test> BOGUS=1")
MARKER_RE = re.compile(rb"X-Fuzz: (MWFZ-\d+-[mh]\d+)")


class Msg:
    """One message the client sends (or hides inside another)."""

    def __init__(self, seed, n, hidden=False):
        self.marker = "MWFZ-%d-%s%d" % (seed, "h" if hidden else "m", n)
        self.hidden = hidden
        self.rcpts = []          # recipients that got a 250 in its transaction
        self.final = None        # the reply to its end, if read
        self.sent_end = False    # its end (dot, BDAT LAST) was sent
        self.content = b""       # what the backend should hold (unstuffed)
        self.must_refuse = None  # why mailward must refuse it, or None
        self.kind = "data"
        self.listener = None
        self.seed = seed

    def header(self, rcpt):
        return (b"X-Fuzz: %s\r\nFrom: a@sender.test\r\nTo: %s\r\nSubject: %s\r\n"
                b"Message-ID: <%s@fuzz.test>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n"
                % (self.marker.encode(), rcpt.encode(), self.marker.encode(),
                   self.marker.encode()))


def unbracket(a):
    """A RCPT argument as the recorder keeps it."""
    return a[1:-1] if len(a) > 2 and a[0] == "<" and a[-1] == ">" else a


def plain(a):
    return a if a == "<>" else a.strip("<>")


def command_replies(data):
    """How many replies mailward owes for command bytes `data` (whole lines,
    read from a line start): a line ends at CRLF only; a line with a bare
    LF runs on to the next CRLF (one reply); a line too long for the
    splitter is one reply, whatever ends it."""
    count, bare = 0, False
    pieces = data.split(b"\n")
    assert pieces[-1] == b"", "command bytes must end with a line end"
    for p in pieces[:-1]:
        crlf = p.endswith(b"\r")
        too_long = len(p) + 1 > SPLIT_MAX
        if bare:
            bare = not crlf
            count += 1 if crlf else 0
        elif too_long:
            count += 1
        elif not crlf:
            bare = True
        else:
            count += 1
    assert not bare, "command bytes must not end inside a bare-LF line"
    return count


class Item:
    """A reply the client waits for: kind cmd, mail, rcpt, reset, data,
    body, bdat, bdat_bad, quit, starttls, lines (n replies)."""

    def __init__(self, kind, label, msg=None, n=1, last=False, blind=None, rcpt=None):
        self.kind = kind
        self.label = label
        self.msg = msg
        self.n = n
        self.last = last
        self.blind = blind       # data: the body bytes sent blind behind it
        self.rcpt = rcpt
        self.chunk_at = (0, 0)   # bdat: where its chunk is in the bytes made with it


class Failure(Exception):
    pass


class Session:
    def __init__(self, seed, listener, port):
        self.seed = seed
        self.rng = random.Random(seed)
        self.listener = listener
        self.port = port
        self.sends = []          # byte strings as sent, in order
        self.replies = []        # (label, raw lines)
        self.notes = []
        self.expect = []         # Items not yet answered, in order
        self.msgs = []
        self.hidden = []
        self.nmsg = 0
        self.client = None
        self.closed_by_server = False
        self.aborted = False
        self.tls = False
        self.txn = None          # recipients taken in the open transaction, or None
        self.last = None         # (the last reply, its Item)
        self.tls_write_failed = False

    # -- output --------------------------------------------------------------------
    def transcript(self, limit=None):
        out = ["session seed=%d listener=%s tls=%s" % (self.seed, self.listener, self.tls)]
        for n in self.notes:
            out.append("note: " + n)
        for s in self.sends:
            r = repr(s)
            if limit and len(r) > limit:
                r = r[:limit // 2] + "...<%d bytes>..." % len(s) + r[-limit // 2:]
            out.append("C: " + r)
        for label, raw in self.replies:
            out.append("S (%s): %r" % (label, raw))
        return "\n".join(out)

    def fail(self, why):
        raise Failure("seed %d: %s" % (self.seed, why))

    # -- I/O -----------------------------------------------------------------------
    def send(self, data):
        """Send data cut at random points, sometimes with a pause between."""
        rng = self.rng
        if not data:
            return
        cuts = []
        r = rng.random()
        if r < 0.45:
            cuts = []
        elif r < 0.9:
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6)))) \
                if len(data) > 1 else []
        elif len(data) < 300:
            cuts = list(range(1, len(data)))
        else:
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 20)))
        pieces, prev = [], 0
        for c in cuts + [len(data)]:
            pieces.append(data[prev:c])
            prev = c
        for i, p in enumerate(pieces):
            self.sends.append(p)
            try:
                self.client.send(p)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
                self.notes.append("send failed: %r" % e)
                # Python's TLS socket reads nothing more once a write failed
                # (OpenSSL's fatal state), even replies already received.
                self.tls_write_failed = self.tls
                return
            if i + 1 < len(pieces) and rng.random() < 0.3:
                # Now and then long enough for the backend's replies to
                # come while a command is still cut in two.
                time.sleep(rng.choice((0, 0.001, 0.005, 0.02)) if rng.random() < 0.97
                           else 0.15)

    def read_reply(self, label):
        try:
            r = self.client.reply(REPLY_TIMEOUT)
        except socket.timeout:
            self.fail("no reply to %s within %d s" % (label, REPLY_TIMEOUT))
        self.replies.append((label, r.raw if r.code is not None else "EOF"))
        if r.code is None:
            if r.raw:
                self.fail("the connection closed in the middle of a reply: %r" % r.raw)
            return None
        code = None
        for i, line in enumerate(r.raw):
            m = re.match(r"^([2-5][0-9][0-9])([ -])", line)
            if m is None:
                self.fail("malformed reply line %r (to %s)" % (line, label))
            if code is None:
                code = m.group(1)
            elif m.group(1) != code:
                self.fail("a reply's lines have different codes: %r" % r.raw)
            if (m.group(2) == " ") != (i == len(r.raw) - 1):
                self.fail("a reply's last line is not the only one with a space: %r" % r.raw)
        return r

    def may_close_after(self, r, item):
        if r is None:
            return False
        if r.code == 421:
            return True
        if item is not None and item.kind == "bdat_bad":
            return True
        if r.code == 554 and "pipelined after STARTTLS" in r.text:
            return True
        # Bytes that came behind STARTTLS after its 220 went out: the
        # session ends with no more said (nothing can be, before TLS).
        if item is not None and item.kind == "starttls" and item.last:
            return True
        return False

    def settle(self, keep=0):
        """Read replies until only `keep` items are left unanswered."""
        last = self.last
        while len(self.expect) > keep and not self.closed_by_server:
            item = self.expect[0]
            r = self.read_reply(item.label)
            if r is None and item.kind == "opt":
                self.expect.pop(0)
                self.closed_by_server = True
                return
            if r is None:
                if self.tls_write_failed:
                    self.closed_by_server = True
                    self.notes.append("the server closed; the replies after a TLS write "
                                      "that failed cannot be read")
                    return
                if self.may_close_after(last[0] if last else None, last[1] if last else None):
                    self.closed_by_server = True
                    self.notes.append("closed by the server after %r" % (last[0].raw,))
                    return
                self.fail("the server closed with %d replies owed (next: %s); the last "
                          "reply was %r" % (sum(i.n for i in self.expect), item.label,
                                            last[0] if last else None))
            last = self.last = (r, item)
            self.on_reply(item, r)
            if item.n > 1:
                item.n -= 1
            else:
                self.expect.pop(0)
            if item.kind in ("quit", "bdat_bad"):
                self.expect_close(item.label)
                return

    def expect_close(self, label):
        closed, rest = self.client.wait_closed(REPLY_TIMEOUT)
        if rest:
            self.replies.append(("after " + label, rest))
            self.fail("bytes after the reply to %s: %r" % (label, rest))
        if not closed:
            self.fail("no close within %d s after the reply to %s" % (REPLY_TIMEOUT, label))
        self.closed_by_server = True

    # -- reply bookkeeping -----------------------------------------------------------
    def on_reply(self, item, r):
        ok = r.code // 100 == 2
        k = item.kind
        if k == "mail":
            if ok:
                self.txn = []
        elif k == "rcpt":
            if ok and self.txn is not None:
                self.txn.append(item.rcpt)
        elif k == "reset":
            if ok:
                self.txn = None
        elif k == "data":
            if r.code != 354:
                if item.blind is not None:
                    # The body went as commands: one reply per line.
                    nxt = self.expect[1]
                    assert nxt.kind == "body" and nxt.msg is item.msg
                    n = command_replies(item.blind)
                    item.msg.final = "not sent: DATA %d" % r.code
                    if n == 0:
                        self.expect.pop(1)
                    else:
                        self.expect[1] = Item("lines", "%s body as commands" % item.msg.marker,
                                              n=n)
        elif k == "body" or (k == "bdat" and item.last):
            item.msg.final = r.code
            item.msg.rcpts = list(self.txn or [])
            # A refusal may end the transaction or not (mailward's own 502
            # to BDAT never reaches the backend); a stale list is harmless:
            # the next message needs a MAIL that is taken, which starts anew.
            if ok:
                self.txn = None

    # -- generation ----------------------------------------------------------------
    def bad_rcpts(self):
        return PF_BAD_RCPTS if self.listener.startswith("pf") else REC_BAD_RCPTS

    def rcpt_pool(self):
        return PF_RCPTS if self.listener.startswith("pf") else REC_RCPTS

    def text_line(self, blind):
        """A body line without its terminator, and whether it poisons."""
        rng = self.rng
        r = rng.random()
        word = lambda n: bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 ")
                               for _ in range(n))
        if r < 0.45:
            return b"~" + word(rng.randint(0, 70)), None
        if r < 0.55:
            return b"", None
        if r < 0.63:
            return b"." * rng.randint(1, 3) + word(rng.randint(0, 20)), None
        if r < 0.68:
            return b"~" + bytes(rng.randint(128, 255) for _ in range(rng.randint(1, 30))), None
        if r < 0.74:
            # Around the length limit: len + CRLF <= MAX_TEXT_LINE is taken.
            n = rng.choice((MAX_TEXT_LINE - 3, MAX_TEXT_LINE - 2, MAX_TEXT_LINE - 1,
                            rng.randint(MAX_TEXT_LINE, 4000)))
            line = b"~" + b"x" * (n - 1)
            return line, ("line_too_long" if n + 2 > MAX_TEXT_LINE else None)
        if r < 0.77:
            # A dotted line one longer: the doubled dot is not the line's.
            n = rng.choice((MAX_TEXT_LINE - 2, MAX_TEXT_LINE - 1))
            line = b"." + b"x" * (n - 1)
            return line, ("line_too_long" if n + 3 > MAX_TEXT_LINE + 1 else None)
        if r < 0.82:
            return b"~nul\x00here" + word(rng.randint(0, 5)), None
        if blind:
            return b"~" + word(rng.randint(0, 20)), None
        return None, None   # the caller makes a raw oddity

    def hidden_txn(self, end=True):
        """A whole transaction for one of the valid recipients, as a client
        reading these bytes as commands would take it; without its final
        dot when the message that hides it ends there (DATA)."""
        self.nmsg += 1
        h = Msg(self.seed, self.nmsg, hidden=True)
        self.hidden.append(h)
        rcpt = self.rng.choice(self.rcpt_pool())
        return (b"RSET\r\nMAIL FROM:<smuggled@sender.test>\r\nRCPT TO:<%s>\r\nDATA\r\n%s"
                b"hidden\r\n%s" % (rcpt.encode(), h.header(rcpt), b".\r\n" if end else b""))

    def raw_oddity(self, last):
        """Raw bytes for a DATA body that end a line, and why they poison.
        A false end of data with a transaction behind it only as the
        body's last part: the transaction ends with the message's own end,
        as in SMTP smuggling."""
        rng = self.rng
        r = rng.randrange(7 if last else 2)
        if r == 0:
            return b"~bare\rcr\r\n", "bare_cr"
        if r == 1:
            return b"~bare\nlf\r\n", "bare_lf"
        if r == 2:
            return b"~x\n.\r\n" + self.hidden_txn(False), "bare_lf"
        if r == 3:
            return b"~x\r\n.\n" + self.hidden_txn(False), "bare_lf"
        if r == 4:
            return b"~x\n.\n" + self.hidden_txn(False), "bare_lf"
        if r == 5:
            return b"~x\r\n.\r\r\n" + self.hidden_txn(False), "bare_cr"
        return b"~x\r.\r\n" + self.hidden_txn(False), "bare_cr"

    def data_message(self, blind):
        """(message, stuffed body with its final dot)."""
        rng = self.rng
        self.nmsg += 1
        m = Msg(self.seed, self.nmsg)
        m.listener = self.listener
        rcpt = rng.choice(self.rcpt_pool())
        wire = m.header(rcpt)
        content = m.header(rcpt)
        nlines = rng.randint(0, 12)
        if rng.random() < 0.03:
            # Past the relay's high-water mark (256 KiB): backpressure.
            big = (b"~" + b"y" * 900 + b"\r\n") * rng.randint(300, 700)
            wire += big
            content += big
        for i in range(nlines):
            line, why = self.text_line(blind)
            if line is None:
                raw, why = self.raw_oddity(i == nlines - 1)
                wire += raw
                content += raw
                m.must_refuse = m.must_refuse or why
                continue
            if why:
                m.must_refuse = m.must_refuse or why
            wire += (b"." + line if line.startswith(b".") else line) + b"\r\n"
            content += line + b"\r\n"
        m.content = content
        return m, wire + b".\r\n"

    def bdat_message(self):
        """(message, the BDAT commands with their chunks, items)."""
        rng = self.rng
        self.nmsg += 1
        m = Msg(self.seed, self.nmsg)
        m.kind = "bdat"
        m.listener = self.listener
        rcpt = rng.choice(self.rcpt_pool())
        content = m.header(rcpt)
        for _ in range(rng.randint(0, 8)):
            r = rng.random()
            if r < 0.5:
                content += b"~" + bytes(rng.choice(b"abcdef \x00\r\n.") for _ in
                                        range(rng.randint(0, 60))) + b"\r\n"
            elif r < 0.7:
                content += b"\r\n.\r\n" + self.hidden_txn()
            elif r < 0.8:
                content += b"x" * rng.randint(900, 5000) + b"\r\n"
            else:
                content += b"." + bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40))) \
                    + b"\r\n"
        m.content = content
        # Chunks: random cuts, some empty.
        ncut = rng.randint(0, 4)
        cuts = sorted(rng.randint(0, len(content)) for _ in range(ncut))
        chunks, prev = [], 0
        for c in cuts + [len(content)]:
            chunks.append(content[prev:c])
            prev = c
        last_sep = rng.random() < 0.3   # "BDAT 0 LAST" after the data
        out, items = b"", []
        for i, ch in enumerate(chunks):
            last = (i == len(chunks) - 1) and not last_sep
            out += self.bdat_line(len(ch), last)
            it = Item("bdat", "BDAT %d%s (%s)" % (len(ch), " LAST" if last else "", m.marker),
                      msg=m, last=last)
            it.chunk_at = (len(out), len(out) + len(ch))   # where its chunk is in out
            out += ch
            items.append(it)
        if last_sep:
            out += self.bdat_line(0, True)
            items.append(Item("bdat", "BDAT 0 LAST (%s)" % m.marker, msg=m, last=True))
        return m, out, items

    def bdat_line(self, size, last):
        rng = self.rng
        verb = rng.choice((b"BDAT", b"BDAT", b"bdat", b"Bdat"))
        num = b"%d" % size
        if rng.random() < 0.1:
            num = b"00" + num
        if not last:
            return verb + b" " + num + b"\r\n"
        word = rng.choice((b"LAST", b"LAST", b"last"))
        sp = b" " if rng.random() < 0.85 else b"  "
        return verb + b" " + num + sp + word + b"\r\n"

    def bad_bdat(self):
        inner = self.hidden_txn()
        n = len(inner)
        return self.rng.choice((
            b"BDAT 1x%d LAST\r\n" % n,
            b"BDAT %d LASTX\r\n" % n,
            b"BDAT 99999999999999999999999 LAST\r\n",
            b"BDAT\r\n",
            b"BDAT -%d\r\n" % n,
            b"BDAT %d\x00 LAST\r\n" % n,
            b"BDAT %d\r LAST\r\n" % n,
            b"BDAT %d LAST\n" % n,
            b"BDAT\t%d LAST\r\n" % n,
            b"BDAT %d%s LAST\r\n" % (n, b" " * self.rng.choice((600, 20000))),
        )) + inner

    def junk(self):
        """(bytes, label): command lines that get one reply each (or merge)."""
        rng = self.rng
        r = rng.randrange(16)
        if r == 0:
            return b"XZQ%d some args\r\n" % rng.randint(0, 99), "unknown verb"
        if r == 1:
            return b"VRFY user\r\n", "VRFY"
        if r == 2:
            return b"HELP\r\n", "HELP"
        if r == 3:
            return b"NOOP\x00MAIL FROM:<x@y.test>\r\n", "NUL"
        if r == 4:
            return b"NOOP\rQUIT\r\n", "bare CR"
        if r == 5:
            return b"RSET\nQUIT\r\n", "bare LF then QUIT"
        if r == 6:
            return b"NOOP\nBDAT 5 LAST\r\n", "bare LF then BDAT"
        if r == 7:
            return b"NOOP " + b"a" * rng.randint(MAX_LINE - 6, 3000) + b"\r\n", "long line"
        if r == 8:
            return b"NOOP " + b"b" * rng.randint(SPLIT_MAX, SPLIT_MAX + 3000) + b"\r\n", \
                "line past the splitter"
        if r == 9:
            return b"c" * rng.randint(SPLIT_MAX, SPLIT_MAX + 100) + b"\nNOOP\r\n", \
                "too long, bare LF"
        if r == 10:
            return b"\r\n", "empty line"
        if r == 11:
            return b"noop\r\n", "lower-case NOOP"
        if r == 12:
            return b"EXPN list\r\n", "EXPN"
        if r == 13:
            return b"NOOP\n\n\nRSET\r\n", "bare LFs"
        if r == 14:
            return b"XCLIENT ADDR=10.0.0.1\r\n", "XCLIENT"
        return b"DATA\x00\r\n", "DATA with NUL"

    # -- the session -----------------------------------------------------------------
    def op(self):
        """One generated step: (bytes, [items], flags). Half of them are
        whole transactions (mostly valid), the rest single steps."""
        rng = self.rng
        if not self.tls and rng.random() < {"pftls": 0.4, "st": 0.1}.get(self.listener, 0.01):
            return b"STARTTLS\r\n", [Item("starttls", "STARTTLS")], "starttls"
        if not self.tls and rng.random() < 0.03:
            return self.halfclose_in_chunk()
        if rng.random() < 0.5:
            return self.txn_op()
        return self.single_op()

    def txn_op(self):
        rng = self.rng
        out, items = b"", []
        s = rng.choice(SENDERS) if rng.random() < 0.95 else rng.choice(BAD_SENDERS)
        out += b"MAIL FROM:" + s.encode() + b"\r\n"
        items.append(Item("mail", "MAIL " + s))
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            a = "<%s>" % rng.choice(self.rcpt_pool()) if rng.random() < 0.9 \
                else rng.choice(self.bad_rcpts())
            out += b"RCPT TO:" + a.encode() + b"\r\n"
            items.append(Item("rcpt", "RCPT " + a, rcpt=unbracket(a)))
        r = rng.random()
        if r < 0.55 or (r < 0.9 and not self.listener.startswith("pf")):
            data, its, flag = self.data_op()
        else:
            data, its, flag = self.bdat_op()
        return out + data, items + its, flag

    def halfclose_in_chunk(self):
        """A transaction whose message (BDAT) is cut inside a chunk, then
        the half-close: every reply before that chunk's comes, its own may
        (a refusal of mailward's) or may not, then the close."""
        rng = self.rng
        m, data, items = self.bdat_message()
        self.msgs.append(m)
        m.final = "cut short"
        out = b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<%s>\r\n" % \
            rng.choice(self.rcpt_pool()).encode()
        pre = [Item("mail", "MAIL (cut)"), Item("rcpt", "RCPT (cut)", rcpt="-")]
        cuttable = [i for i, it in enumerate(items) if it.chunk_at[1] > it.chunk_at[0]]
        if not cuttable:
            return out, pre, "halfclose"
        k = rng.choice(cuttable)
        start, end = items[k].chunk_at
        cut = rng.randint(start, end - 1)
        self.notes.append("half-close %d bytes into the chunk of %s" % (cut - start,
                                                                        items[k].label))
        return out + data[:cut], pre + items[:k] + [Item("opt", items[k].label)], "halfclose"

    def data_op(self):
        blind = self.rng.random() < 0.4
        m, body = self.data_message(blind)
        self.msgs.append(m)
        if blind:
            m.sent_end = True
            return b"DATA\r\n" + body, [Item("data", "DATA (%s, blind)" % m.marker, msg=m,
                                              blind=body),
                                         Item("body", "end of %s" % m.marker, msg=m)], ""
        return b"DATA\r\n", [Item("data", "DATA (%s)" % m.marker, msg=m)], \
            ("interactive", m, body)

    def bdat_op(self):
        rng = self.rng
        m, data, items = self.bdat_message()
        self.msgs.append(m)
        if rng.random() < 0.15 and len(items) > 1:
            # The message is left unfinished: RSET after some chunks.
            k = rng.randint(1, len(items) - 1)
            cut = 0
            for it in items[:k]:
                size = int(it.label.split()[1])
                cut = data.index(b"\r\n", cut) + 2 + size
            m.final = "unfinished"
            return data[:cut] + b"RSET\r\n", items[:k] + [Item("reset", "RSET")], ""
        m.sent_end = True
        return data, items, ""

    def many_rcpts(self):
        """A transaction past the relay's limit of replies awaited at once
        (100): MAIL, up to 150 RCPTs, a message, in one write."""
        rng = self.rng
        out = b"MAIL FROM:<a@sender.test>\r\n"
        items = [Item("mail", "MAIL (many)")]
        for _ in range(rng.randint(90, 150)):
            a = "<%s>" % rng.choice(self.rcpt_pool())
            out += b"RCPT TO:" + a.encode() + b"\r\n"
            items.append(Item("rcpt", "RCPT " + a, rcpt=unbracket(a)))
        data, its, flag = self.data_op()
        return out + data, items + its, flag

    def single_op(self):
        rng = self.rng
        if rng.random() < 0.02:
            return self.many_rcpts()
        r = rng.random()
        if r < 0.07:
            name = rng.choice((b"client.test", b"client.test", b"", b"h" * 300, b"[127.0.0.1]"))
            verb = rng.choice((b"EHLO", b"EHLO", b"HELO", b"ehlo"))
            return verb + (b" " + name if name else b"") + b"\r\n", \
                [Item("reset", verb.decode() + " " + name[:20].decode())], ""
        if r < 0.22:
            if rng.random() < 0.85:
                s = rng.choice(SENDERS)
            else:
                s = rng.choice(BAD_SENDERS)
            verb = b"mail from:" if rng.random() < 0.1 else b"MAIL FROM:"
            return verb + s.encode() + b"\r\n", [Item("mail", "MAIL " + s)], ""
        if r < 0.40:
            if rng.random() < 0.8:
                a = "<%s>" % rng.choice(self.rcpt_pool())
            else:
                a = rng.choice(self.bad_rcpts())
            return b"RCPT TO:" + a.encode() + b"\r\n", \
                [Item("rcpt", "RCPT " + a, rcpt=unbracket(a))], ""
        if r < 0.45:
            return b"RSET\r\n", [Item("reset", "RSET")], ""
        if r < 0.49:
            return b"NOOP\r\n", [Item("cmd", "NOOP")], ""
        if r < 0.60:
            data, label = self.junk()
            if label == "bare LF then BDAT":
                # A BDAT line to a server that ends lines at a bare LF, its
                # size unknown to mailward: 521, then the close.
                return data, [Item("bdat_bad", label)], "end"
            return data, [Item("lines", label, n=command_replies(data))], ""
        if r < 0.66:
            return self.data_op()
        if r < 0.78:
            return self.bdat_op()
        if r < 0.82:
            return self.bad_bdat(), [Item("bdat_bad", "malformed BDAT")], "end"
        if r < 0.86:
            return b"QUIT\r\n", [Item("quit", "QUIT")], "end"
        if r < 0.93 and not self.tls:
            return b"STARTTLS\r\n", [Item("starttls", "STARTTLS")], "starttls"
        if r < 0.96 and not self.tls:
            return b"", [], "halfclose"
        if r < 0.99:
            return b"", [], "abort"
        return b"NOOP\r\n", [Item("cmd", "NOOP")], ""

    def connect(self):
        """The client's connection (t_out_session_fuzz makes it elsewhere)."""
        return Client(self.port, timeout=REPLY_TIMEOUT)

    def run(self, ctx):
        rng = self.rng
        self.client = self.connect()
        self.expect.append(Item("cmd", "greeting"))
        self.settle()
        # Most sessions say EHLO first, as clients do.
        if rng.random() < 0.85:
            self.send(b"EHLO client.test\r\n")
            self.expect.append(Item("reset", "EHLO"))
        nops = rng.randint(2, 30)
        group, gitems = b"", []
        for i in range(nops):
            data, items, flag = self.op()
            if self.closed_by_server:
                break
            group += data
            gitems += items
            end = flag in ("end", "halfclose", "abort", "starttls") or \
                isinstance(flag, tuple) or i == nops - 1
            if flag == "starttls" and rng.random() < 0.1:
                # Pipelined behind STARTTLS: the session must end (554).
                group += b"NOOP\r\n"
                gitems[-1].last = True      # injected: 554, or 220 then the close
                gitems.append(Item("cmd", "NOOP behind STARTTLS"))
            if flag == "end" and rng.random() < 0.3:
                group += b"NOOP\r\nQUIT\r\n"   # never read
            if not end and rng.random() < 0.5:
                continue    # pipelined with the next step
            self.send(group)
            self.expect += gitems
            group, gitems = b"", []
            if flag == "end":
                self.settle()
                if not self.closed_by_server:
                    self.fail("the session did not end after %s" % items[-1].label)
                return
            if flag == "halfclose":
                self.notes.append("half-close")
                try:
                    self.client.sock.shutdown(socket.SHUT_WR)
                except OSError as e:
                    self.notes.append("shutdown: %r" % e)
                self.settle()
                if not self.closed_by_server:
                    self.expect_close("the half-close")
                return
            if flag == "abort":
                self.abort()
                return
            if flag == "starttls":
                self.settle()
                if self.closed_by_server:
                    return
                self.starttls(ctx)
                if self.tls and rng.random() < 0.9:
                    self.send(b"EHLO client.test\r\n")
                    self.expect.append(Item("reset", "EHLO after TLS"))
                continue
            if isinstance(flag, tuple):
                _, m, body = flag
                self.settle()
                if self.closed_by_server:
                    return
                if self.replies[-1][1][-1][:3] == "354":
                    m.sent_end = True
                    self.expect.append(Item("body", "end of %s" % m.marker, msg=m))
                    if rng.random() < 0.1:
                        # The client goes away in the middle of its message.
                        self.send(body[:rng.randint(0, len(body) - 1)])
                        self.abort(expect_nothing=True)
                        m.sent_end = False
                        return
                    self.send(body)
                else:
                    m.final = "not sent: DATA refused"
                continue
            if rng.random() < 0.7:
                self.settle()
                if self.closed_by_server:
                    return
        if not self.closed_by_server:
            self.send(b"QUIT\r\n")
            self.expect.append(Item("quit", "QUIT"))
            self.settle()

    def starttls(self, ctx):
        label, raw = self.replies[-1]
        if not raw or not raw[-1].startswith("220"):
            return
        if self.client.buf:
            self.fail("bytes after the 220 to STARTTLS: %r" % self.client.buf)
        try:
            self.client.sock.settimeout(REPLY_TIMEOUT)
            self.client.sock = ctx.wrap_socket(self.client.sock, server_hostname="localhost")
        except (ssl.SSLError, OSError) as e:
            self.fail("TLS handshake after STARTTLS failed: %r" % e)
        self.tls = True
        self.txn = None

    def abort(self, expect_nothing=False):
        """Close without reading on: whatever is owed is not checked, and
        messages whose end went unanswered may or may not arrive."""
        self.aborted = True
        if self.rng.random() < 0.5 and not expect_nothing:
            self.settle(keep=self.rng.randint(0, len(self.expect)))
        self.notes.append("abort with %d replies unread" % len(self.expect))
        self.client.close()
        self.closed_by_server = True


def seeds(default=DEFAULT_SESSIONS):
    first = os.environ.get("MAILWARD_FUZZ_SEED")
    count = os.environ.get("MAILWARD_FUZZ_SESSIONS")
    start = int(first) if first else 1
    n = int(count) if count else (1 if first else default)
    return list(range(start, start + n))


def listener_for(seed):
    r = random.Random(seed * 7919 + 1).random()
    return "rec" if r < 0.35 else "st" if r < 0.5 else "pf" if r < 0.8 else "pftls"


def tail_diff(got, want):
    """Where got stops ending like want: the bytes around it in each."""
    n = 0
    while n < min(len(got), len(want)) and got[-1 - n] == want[-1 - n]:
        n += 1
    return "from the end, %d bytes agree; got ...%r|%r, sent ...%r|%r" % (
        n, got[max(0, len(got) - n - 60):len(got) - n], got[len(got) - n:][:60],
        want[max(0, len(want) - n - 60):len(want) - n], want[len(want) - n:][:60])


def pf_messages(pf):
    """Every Maildir file: (mailbox, bytes)."""
    out = []
    if not os.path.isdir(pf.mail):
        return out
    for box in os.listdir(pf.mail):
        for sub in ("new", "cur"):
            d = os.path.join(pf.mail, box, sub)
            if os.path.isdir(d):
                for f in os.listdir(d):
                    with open(os.path.join(d, f), "rb") as fh:
                        out.append((box, fh.read()))
    return out


def pf_queue_files(pf):
    n = 0
    for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
        for _, _, files in os.walk(os.path.join(pf.queue, sub)):
            n += len(files)
    return n


def held_message(where, data, by_marker, failures):
    """The message a backend (where) holds, by its marker: (session,
    message, marker, seed), or None with a failure added when it has no
    marker or is no message the client sent as one."""
    found = MARKER_RE.search(data)
    if not found:
        failures.append((None, "%s holds a message without a marker: %r" % (where, data[:300])))
        return None
    marker = found.group(1).decode()
    s, m = by_marker.get(marker, (None, None))
    seed = s.seed if s else int(marker.split("-")[1])
    if m is None or m.hidden:
        failures.append((seed, "%s holds a message the client never sent as one (%s): %r"
                         % (where, marker, data[:400])))
        return None
    return s, m, marker, seed


def report(mw, sessions, failures, what):
    """Stop mailward if all went well; print each failure, and the
    transcripts of the first five failing seeds; fail the test if any."""
    if not failures:
        mw.stop()
    for seed, why in failures:
        print("FAIL (seed %s): %s" % (seed, why))
    for seed in sorted({f[0] for f in failures if f[0] is not None})[:5]:
        if seed in sessions:
            print("---- seed %d (MAILWARD_FUZZ_SEED=%d) ----\n%s"
                  % (seed, seed, sessions[seed].transcript(limit=3000)))
    mwtest.check(not failures, "%d %s failures" % (len(failures), what))


def main():
    run = seeds()
    failures = []
    sessions = {}
    with mwtest.Env("session_fuzz") as env:
        be = env.recorder()
        pf = env.postfix(identity="xclient", main={
            "smtpd_error_sleep_time": "0", "smtpd_soft_error_limit": "100"})
        mw = env.mailward(listeners={
            "rec": {"accept_tls": "none", "require_tls": "no", "forward": "127.0.0.1:%d" % be.port},
            "pf": {"accept_tls": "none", "require_tls": "no", "forward": "127.0.0.1:%d" % pf.port,
                   "client_identity": "xclient"},
            "st": {"accept_tls": "starttls", "require_tls": "no",
                   "forward": "127.0.0.1:%d" % be.port},
            "pftls": {"accept_tls": "starttls", "require_tls": "yes",
                      "forward": "127.0.0.1:%d" % pf.port, "client_identity": "xclient"}})
        # CHUNKING is offered once mailward's probe of Postfix has ended.
        mwtest.wait_for(lambda: "disconnect from" in pf.maillog(), 15)
        ctx = mwtest.ssl_client_context(env)
        started = time.monotonic()
        for seed in run:
            lst = listener_for(seed)
            s = Session(seed, lst, mw.port(lst))
            sessions[seed] = s
            try:
                s.run(ctx)
            except Failure as e:
                failures.append((seed, str(e)))
            except (OSError, AssertionError) as e:
                failures.append((seed, "client error: %r" % e))
            finally:
                if s.client is not None:
                    s.client.close()
            with open(env.path("session-%d.txt" % seed), "w") as f:
                f.write(s.transcript())
            if not mw.alive():
                failures.append((seed, "mailward is gone after this session"))
                break
            rep = mw.sanitizer_report()
            if rep:
                failures.append((seed, "sanitizer report:\n" + rep))
                break
        print("%d sessions in %.1f s" % (len(sessions), time.monotonic() - started))

        # Invariants 1 and 2: what the backends hold.
        by_marker = {}
        for s in sessions.values():
            for m in s.msgs + s.hidden:
                by_marker[m.marker] = (s, m)
        accepted = [m for s in sessions.values() for m in s.msgs if m.final == 250]
        unknown = {m.marker for s in sessions.values() if s.aborted for m in s.msgs
                   if m.sent_end and m.final is None}
        pf_want = sum(len(set(m.rcpts)) for m in accepted if m.listener.startswith("pf"))
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if len(pf_messages(pf)) >= pf_want and pf_queue_files(pf) == 0:
                break
            time.sleep(0.2)
        time.sleep(1)
        held = [("recorder", None, mm.data, mm) for mm in be.messages] + \
               [("pf", box, data, None) for box, data in pf_messages(pf)]
        seen = {}
        for where, box, data, rm in held:
            got = held_message(where, data, by_marker, failures)
            if got is None:
                continue
            s, m, marker, seed = got
            if m.final != 250 and marker not in unknown:
                failures.append((seed, "%s holds %s, whose end got %r" % (where, marker, m.final)))
                continue
            seen.setdefault(marker, []).append((where, box, data, rm))
        for s in sessions.values():
            for m in s.msgs:
                if m.final == 250 and m.must_refuse:
                    failures.append((s.seed, "%s got 250, yet holds a %s" % (m.marker,
                                                                            m.must_refuse)))
                got = seen.get(m.marker, [])
                if m.final != 250:
                    if len(got) > (1 if m.listener in ("rec", "st") else len(set(m.rcpts)) or 99):
                        failures.append((s.seed, "%s arrived %d times" % (m.marker, len(got))))
                    continue
                if m.listener in ("rec", "st"):
                    if len(got) != 1:
                        failures.append((s.seed, "%s (250) arrived %d times at the recorder"
                                         % (m.marker, len(got))))
                        continue
                    rm = got[0][3]
                    if rm.data != m.content:
                        failures.append((s.seed, "%s: the recorder got %r, sent %r"
                                         % (m.marker, rm.data[:2000], m.content[:2000])))
                    if [plain(a) for a in rm.rcpt_tos] != [plain(a) for a in m.rcpts]:
                        failures.append((s.seed, "%s: recipients %r, the client was told %r"
                                         % (m.marker, rm.rcpt_tos, m.rcpts)))
                    continue
                boxes = sorted(b for _, b, _, _ in got)
                want = sorted({r.split("@")[0].lower() for r in m.rcpts})
                if boxes != want:
                    failures.append((s.seed, "%s (250) is in mailboxes %r, the client was told "
                                     "%r" % (m.marker, boxes, m.rcpts)))
                # Postfix stores CRLF (and CRs before it) as LF, and a bare CR as a space.
                want_tail = re.sub(rb"\r+\n", b"\n", m.content).replace(b"\r", b" ")
                for _, b, data, _ in got:
                    if not (data.endswith(want_tail) or data.endswith(want_tail + b"\n")):
                        failures.append((s.seed, "%s in %s does not end with the bytes sent: "
                                         "%s" % (m.marker, b, tail_diff(data, want_tail))))
        stats = {"sessions": len(sessions), "messages": sum(len(s.msgs) for s in sessions.values()),
                 "accepted": len(accepted), "hidden": sum(len(s.hidden) for s in sessions.values()),
                 "backend copies": sum(len(v) for v in seen.values()),
                 "aborted": sum(1 for s in sessions.values() if s.aborted)}
        print("stats: %r" % stats)
        report(mw, sessions, failures, "session fuzz")
    print("t_session_fuzz: ok")


if __name__ == "__main__":
    main()
