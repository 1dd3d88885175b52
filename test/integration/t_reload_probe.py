#!/usr/bin/python3
"""SIGHUP applies probe_interval to the probe timer, not only to the
configuration in memory.

mailward starts with probe_interval = 300: the backend is probed once, at
start. The file is rewritten with probe_interval = 1, then SIGHUP:
event=reload_config names "[smtp] probe_interval" as applied, and the
backend is then probed about every second (at least 3 sessions in 5.5 s).
mailward then stops cleanly.

Then forward moves by SIGHUP while the probe of the old backend is still
under way: the old backend is a silent fixture that holds each connection
3 s, says nothing and closes. The new backend must be probed once that
probe ends (within 8 s of the SIGHUP), not only at the next
probe_interval (300 s), so that the capabilities offered are its own."""

import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402


def main():
    with mwtest.Env("reload_probe") as env:
        be = env.recorder()
        lst = {"forward": "127.0.0.1:%d" % be.port, "probe_interval": 300}
        mw = env.mailward(listeners={"smtp": lst})
        mwtest.check(mwtest.wait_for(lambda: be.sessions >= 1, 5),
                     "no probe of the backend at start")
        time.sleep(1)
        n0 = be.sessions
        mwtest.write_config(env, mw.conf, {"smtp": dict(mw.listeners["smtp"],
                                                        probe_interval=1)},
                            {}, mw.alert_log)
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(lambda: outcheck.log_events(mw, "reload_config"), 5),
                     "no event=reload_config line")
        mwtest.eq(outcheck.log_events(mw, "reload_config")[0].get("applied"),
                  "[smtp] probe_interval", "applied=")
        time.sleep(5.5)
        n = be.sessions - n0
        print("probes in 5.5 s after the SIGHUP: %d" % n)
        mwtest.check(n >= 3, "probe_interval = 1 applied by SIGHUP, but the backend was "
                     "probed %d times in 5.5 s" % n)
        mw.stop()

        # The silent backend fixture: holds a connection 3 s without a word.
        silent = socket.create_server(("127.0.0.1", 0))
        accepted = []

        def hold():
            while True:
                try:
                    c, _ = silent.accept()
                except OSError:
                    return
                accepted.append(c)
                threading.Timer(3, c.close).start()
        threading.Thread(target=hold, daemon=True).start()
        env.on_exit(silent.close)
        be2 = env.recorder()
        lst = {"forward": "127.0.0.1:%d" % silent.getsockname()[1], "probe_interval": 300}
        mw = env.mailward(listeners={"smtp": lst})
        mwtest.check(mwtest.wait_for(lambda: accepted, 5), "no probe of the silent backend")
        mwtest.write_config(env, mw.conf, {"smtp": dict(
            mw.listeners["smtp"], forward="127.0.0.1:%d" % be2.port)}, {}, mw.alert_log)
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(lambda: outcheck.log_events(mw, "reload_forward"), 5),
                     "no event=reload_forward line")
        probed = mwtest.wait_for(lambda: be2.sessions >= 1, 8)
        print("the new backend's sessions 8 s after the SIGHUP: %d" % be2.sessions)
        mwtest.check(probed, "forward moved during a probe: the new backend was not probed")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
