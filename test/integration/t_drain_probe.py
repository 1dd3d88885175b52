#!/usr/bin/python3
"""SIGTERM with no session left stops at once, even while a capability
probe waits on a backend that does not answer.

A probe is not a client's session: nothing is lost if it is cut short, and
nobody waits for it once the listeners are closed. But it was counted as a
session, so a probe stuck on a hung backend (a Postfix stopped with
SIGSTOP here, smtp-sink being real software that can be stopped) held the
drain for the whole drain_timeout and ended with a misleading
"event=drain_timeout sessions=1" (found by t_lifecycle_load's author: a
reload that moved forward to a stopped backend, then SIGTERM).

For a single process and for workers = 2, each on its own: mailward starts
with forward to a smtp-sink that is stopped, so the first probe hangs;
SIGTERM; mailward exits 0 well within drain_timeout (20 s), logs
"event=draining ... sessions=0" and no event=drain_timeout, and no process
is left. (A client whose EHLO waits on that first probe is a session: the
drain waits for it, up to drain_timeout, as before.)
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

DRAIN = 20


def run(env, workers):
    sink = env.smtp_sink()
    sink.proc.send_signal(signal.SIGSTOP)
    env.on_exit(lambda: sink.proc.poll() is None and sink.proc.send_signal(signal.SIGCONT))
    g = {"drain_timeout": DRAIN}
    if workers:
        g["workers"] = workers
    mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % sink.port}}, globals=g)
    pids = mwtest.children(mw.pid)
    time.sleep(0.5)
    t0 = time.monotonic()
    os.kill(mw.pid, signal.SIGTERM)
    rc = mw.wait(DRAIN + 15)
    took = time.monotonic() - t0
    print("workers=%d: exit %r after %.1f s" % (workers, rc, took))
    mwtest.eq(rc, 0, "exit status; log:\n%s" % mw.log()[-3000:])
    mwtest.check(took < DRAIN / 2, "the drain took %.1f s with no session left; log:\n%s"
                 % (took, mw.log()[-3000:]))
    mwtest.check("event=drain_timeout" not in mw.log(), "drain_timeout logged:\n%s"
                 % mw.log()[-3000:])
    counts = re.findall(r"event=draining signal=15 sessions=(\d+) ", mw.log())
    mwtest.eq(counts, ["0"] * max(1, workers), "sessions counted at the drain")
    left = [p for p in pids if os.path.exists("/proc/%d" % p)]
    mwtest.eq(left, [], "processes left")
    rep = mw.sanitizer_report()
    mwtest.check(rep is None, "sanitizer report:\n%s" % rep)


def main():
    with mwtest.Env("drain_probe") as env:
        run(env, 0)
        run(env, 2)
    print("ok")


if __name__ == "__main__":
    main()
