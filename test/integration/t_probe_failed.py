#!/usr/bin/python3
"""A backend probe that fails is logged with its whole reason.

mailward starts with a backend that nobody listens on: the probe at start
logs event=backend_failed and event=probe_failed, both with the reason in
quotes ("connection refused" has a blank), so that a key=value reader gets
the same reason from each; mailward still starts and stops cleanly."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402


def main():
    with mwtest.Env("probe_failed") as env:
        port = mwtest.free_port()
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % port}})
        mwtest.check(mwtest.wait_for(lambda: outcheck.log_events(mw, "probe_failed"), 10),
                     "no event=probe_failed line:\n%s" % mw.log()[-2000:])
        mw.stop()
        failed = outcheck.log_events(mw, "backend_failed")
        probe = outcheck.log_events(mw, "probe_failed")
        print("backend_failed: %r\nprobe_failed: %r" % (failed, probe))
        mwtest.check(failed and " " in failed[0].get("reason", ""),
                     "backend_failed without a reason with a blank: %r" % failed)
        mwtest.eq(probe[0].get("reason"), failed[0].get("reason"), "probe_failed reason=")
    print("ok")


if __name__ == "__main__":
    main()
