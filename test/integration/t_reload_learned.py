#!/usr/bin/python3
"""The state stores of an outbound listener, in every worker, and a SIGHUP
that turns learning on.

mailward runs with workers = 2, one outbound listener with mta_sts = yes
and learned_max_age = 0:
1. each worker holds state_dir/mta-sts.mdb open (MTA-STS policies are kept
   across restarts whether or not anything is learned), and no
   learned.mdb.
2. The file is rewritten with learned_max_age = 30, then SIGHUP: each
   worker applies it (event=reload_config applied="[out] learned_max_age")
   and then holds learned.mdb open, as a start with 30 would have it; the
   supervisor, which serves no session, opens neither store.
mailward then stops cleanly."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from t_reload_config import hup  # noqa: E402


def open_files(pid):
    """The base names of the files process pid holds open."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.add(os.path.basename(os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            pass
    return out


def main():
    with mwtest.Env("reload_learned") as env:
        os.chmod(env.dir, 0o777)
        state = env.path("state")
        os.mkdir(state)
        os.chmod(state, 0o777)
        out = {"accept_tls": "none", "require_tls": False, "forward": "original-dst",
               "forward_tls": "policy", "mta_sts": True, "learned_max_age": 0}
        g = {"workers": 2, "state_dir": state}
        mw = env.mailward(listeners={"out": out}, globals=g)
        workers = mwtest.wait_for(lambda: len(mwtest.children(mw.pid)) == 2 and
                                  mwtest.children(mw.pid), 10)
        mwtest.check(workers, "two workers did not start")
        # Each worker opens its stores before it logs worker_start.
        started = mwtest.wait_for(lambda: all("event=worker_start worker=%d" % i in mw.log()
                                              for i in (0, 1)), 10)
        mwtest.check(started, "the two workers did not log worker_start:\n" + mw.log())

        print("== 1. learned_max_age = 0: the MTA-STS store only", flush=True)
        for pid in workers:
            files = open_files(pid)
            print("worker %d: %s" % (pid, sorted(f for f in files if f.endswith(".mdb"))))
            mwtest.check("mta-sts.mdb" in files,
                         "worker %d: mta-sts.mdb not open with learned_max_age = 0" % pid)
            mwtest.check("learned.mdb" not in files,
                         "worker %d: learned.mdb open with learned_max_age = 0" % pid)

        print("== 2. SIGHUP to learned_max_age = 30: the learned store opened", flush=True)
        mwtest.write_config(env, mw.conf, {"out": dict(mw.listeners["out"],
                                                       learned_max_age=30)},
                            g, mw.alert_log)
        got = hup(mw, "reload_config")
        mwtest.eq([x.get("applied") for x in got], ["[out] learned_max_age"] * 3,
                  "event=reload_config lines")
        for pid in workers:
            ok = mwtest.wait_for(lambda: "learned.mdb" in open_files(pid), 5)
            mwtest.check(ok, "worker %d: learned_max_age = 30 applied by SIGHUP, but "
                         "learned.mdb was not opened" % pid)
        files = open_files(mw.pid)
        mwtest.check(not {"learned.mdb", "mta-sts.mdb"} & files,
                     "the supervisor opened a store: %s" % sorted(files))
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
