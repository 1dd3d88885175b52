#!/usr/bin/python3
"""log = syslog: mailward's log lines and alerts reach syslog, facility
mail, from the supervisor and from each worker, after the privilege drop.

mailward runs in a mount namespace of its own (unshare) whose /dev is a
directory of this test's: /dev/null and friends bound from the real one,
and /dev/log a datagram socket this test reads, as a syslog daemon does.
glibc's syslog(3) writes "<PRI>Mmm dd hh:mm:ss mailward[PID]: MESSAGE".

With workers = 2 and a plaintext client refused (530) through each worker:
- event=supervisor at facility mail, severity info (PRI 22), from the
  supervisor, whose pid is mailward's, and event=worker_start from each
  worker, after it dropped its privileges (uid=65534);
- each refusal's alert (event=alert type=plaintext_refused) at severity
  warning (PRI 20), from a worker: a pid that is not the supervisor's, and
  both workers' pids appear;
- the alert log (JSON lines) has the same alerts;
- nothing of this is written to stderr;
- SIGTERM: the supervisor's event=stopped still reaches syslog, and
  mailward exits 0."""

import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client  # noqa: E402

LINE = re.compile(r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d mailward\[(\d+)\]: (.*)$", re.S)
DEV_NODES = ("null", "zero", "full", "random", "urandom")


class SyslogSocket:
    """A datagram socket at path, read in a thread: what syslog(3) sends."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.lines = []
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.lines.append(data.decode("utf-8", "replace"))

    def parsed(self):
        """(pri, pid, message) of every line; fails on one of another shape."""
        out = []
        for ln in list(self.lines):
            m = LINE.match(ln)
            mwtest.check(m, "a syslog line not in glibc's format: %r" % ln)
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        return out

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def refuse_plaintext(mw):
    c = Client(mw.port("smtp"))
    c.reply()
    c.cmd("EHLO plain.test")
    r = c.cmd("MAIL FROM:<alice@sender.test>")
    mwtest.check(r.starts("530 5.7.0"), "plaintext MAIL: %r" % r)
    c.cmd("QUIT")
    c.close()


def main():
    if not mwtest.is_root():
        mwtest.skip("a mount namespace with its own /dev needs root")
    with mwtest.Env("syslog") as env:
        dev = env.path("dev")
        os.makedirs(dev)
        os.chmod(dev, 0o755)
        for n in DEV_NODES:
            open(os.path.join(dev, n), "w").close()
        log = SyslogSocket(os.path.join(dev, "log"))
        env.on_exit(log.close)
        binds = "; ".join("mount --bind /dev/%s %s/%s" % (n, dev, n) for n in DEV_NODES)
        wrap = ["unshare", "--mount", "sh", "-ec",
                '%s; mount --rbind %s /dev; exec "$0" "$@"' % (binds, dev)]
        backend = env.recorder()
        mw = env.mailward(
            listeners={"smtp": {"forward": "127.0.0.1:%d" % backend.port}},
            globals={"log": "syslog", "workers": 2}, wrap=wrap)

        # Each worker refuses at least one session: the kernel spreads new
        # connections over the two SO_REUSEPORT sockets, so try until both
        # have (or give up after 200 sessions).
        workers = set()
        sessions = 0
        while len(workers) < 2 and sessions < 200:
            refuse_plaintext(mw)
            sessions += 1
            mwtest.wait_for(lambda: len([x for x in log.parsed()
                                         if "type=plaintext_refused" in x[2]]) >= sessions, 5)
            workers = {pid for pri, pid, msg in log.parsed()
                       if "type=plaintext_refused" in msg}
        got = log.parsed()
        for pri, pid, msg in got[:40]:
            print("<%d> [%d] %s" % (pri, pid, msg[:200]))
        starts = [(pri, pid) for pri, pid, msg in got if " event=supervisor " in msg]
        mwtest.eq(starts, [(2 * 8 + 6, mw.pid)], "event=supervisor lines (mail.info, the "
                  "supervisor)")
        wstarts = {pid for pri, pid, msg in got
                   if " event=worker_start " in msg and " uid=65534 " in msg and pri == 22}
        mwtest.eq(wstarts, workers, "event=worker_start lines (mail.info, uid 65534) from "
                  "the workers that refused")
        alerts = [(pri, pid) for pri, pid, msg in got if "type=plaintext_refused" in msg]
        mwtest.eq(len(alerts), sessions, "alert lines in syslog, one per refused session")
        mwtest.eq({pri for pri, _ in alerts}, {2 * 8 + 4}, "alert lines' PRI (mail.warning)")
        mwtest.check(mw.pid not in workers and len(workers) == 2,
                     "alerts from two workers, not the supervisor %d: %r" % (mw.pid, workers))
        mwtest.eq(len(mw.alerts()), sessions, "alerts in the JSON lines log")
        mwtest.check(" event=" not in mw.log(), "log lines on stderr with log = syslog:\n%s"
                     % mw.log()[-2000:])

        n = len(log.lines)
        mw.stop()
        stopped = mwtest.wait_for(lambda: [(pri, pid) for pri, pid, msg in log.parsed()[n:]
                                           if " event=stopped " in msg], 5)
        mwtest.eq(stopped, [(2 * 8 + 6, mw.pid)], "event=stopped lines after SIGTERM")
    print("ok")


if __name__ == "__main__":
    main()
