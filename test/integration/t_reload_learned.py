#!/usr/bin/python3
"""The state stores of an outbound listener, in every worker.

mailward runs with workers = 2, one outbound listener with mta_sts = yes
and learned_max_age = 0:
1. each worker holds state_dir/mta-sts.mdb open (MTA-STS policies are kept
   across restarts whether or not anything is learned), and no
   learned.mdb.
mailward then stops cleanly."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


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
        mwtest.wait_for(lambda: "event=worker_start worker=1" in mw.log(), 10)

        print("== 1. learned_max_age = 0: the MTA-STS store only", flush=True)
        for pid in workers:
            files = open_files(pid)
            print("worker %d: %s" % (pid, sorted(f for f in files if f.endswith(".mdb"))))
            mwtest.check("mta-sts.mdb" in files,
                         "worker %d: mta-sts.mdb not open with learned_max_age = 0" % pid)
            mwtest.check("learned.mdb" not in files,
                         "worker %d: learned.mdb open with learned_max_age = 0" % pid)

        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
