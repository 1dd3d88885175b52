#!/usr/bin/python3
"""alert_log on a disk that fills up: one fragment lost, never the line after it.

mailward runs in a mount namespace of its own (unshare) where the alert
log lives on a 64 KiB tmpfs. Once it runs, a filler file takes every free
page, so the log's last page is all the room left: plaintext MAILs (one
plaintext_refused alert each) fill it, one line is cut short there, and
the rest fail.

- event=alert_log_failed is logged once, however many alerts fail;
- mailward answers every client all along (530) and stays up;
- once the filler is removed, the next alerts are whole JSON lines: the
  line cut short is ended by the next write instead of swallowing it
  (before: the first alert after the disk had room again was glued to the
  fragment, and a JSON-lines reader lost both), and event=alert_log_written
  says how many were lost meanwhile;
- every line of the file is a JSON object but at most one, which is the
  start of one.
"""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def plaintext_mail(port, n):
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO client.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"MAIL FROM:<a@sender.test>\r\n")
        r = f.readline()
        mwtest.check(r.startswith(b"530 "), "plaintext MAIL: %r" % r)
        s.sendall(b"QUIT\r\n")
        f.readline()
        f.close()
        s.close()


def main():
    if not mwtest.is_root():
        mwtest.skip("a tmpfs in a mount namespace needs root")
    with mwtest.Env("alert_log_full_disk") as env:
        be = env.recorder()
        full = env.path("full")
        os.makedirs(full)
        log = os.path.join(full, "alerts.json")
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                'mount -t tmpfs -o size=64k tmpfs %s; exec "$0" "$@"' % full]
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}},
                          globals={"alert_log": log}, wrap=wrap)
        inside = "/proc/%d/root" % mw.pid + full
        port = mw.port("smtp")
        plaintext_mail(port, 1)  # the log's first page
        fd = os.open(inside + "/fill", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        os.close(fd)
        # A line is some 270 bytes: 20 fill the page's rest and fail after it.
        plaintext_mail(port, 20)
        failed_lines = mw.log().count("event=alert_log_failed")
        mwtest.check(mw.alive(), "mailward died on a full disk")
        os.remove(inside + "/fill")
        plaintext_mail(port, 3)
        with open(inside + "/alerts.json", "rb") as f:
            lines = f.read().decode().split("\n")
        mwtest.eq(lines[-1], "", "the file's end")
        good, bad = [], []
        for line in lines[:-1]:
            try:
                good.append(json.loads(line))
            except ValueError:
                bad.append(line)
        print("alert log: %d JSON lines, %d not: %r" % (len(good), len(bad), bad))
        mwtest.check(len(bad) <= 1 and all(b.startswith('{"') for b in bad),
                     "lines that are not JSON: %r" % bad)
        tail = lines[-4:-1]
        mwtest.check(all(x not in bad and json.loads(x)["event"] == "plaintext_refused"
                         for x in tail),
                     "the three alerts written once there was room: %r" % tail)
        mwtest.eq(failed_lines, 1, "event=alert_log_failed lines while the disk was full")
        lost = [x for x in mw.log().splitlines() if "event=alert_log_written" in x]
        mwtest.eq(len(lost), 1, "event=alert_log_written lines")
        mwtest.eq(len(good) + int(lost[0].rsplit("lost=", 1)[1]), 24,
                  "alerts written and alerts lost")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
