#!/usr/bin/python3
"""An alert command inherits no descriptor of mailward's but its standard
input, output and error.

mailward with an outbound listener that learns and keeps MTA-STS policies
(so state_dir/learned.mdb and mta-sts.mdb are open, LMDB's files, which
LMDB does not open close-on-exec) and an inbound one with require_tls; the
alert command is `exec ls -l /proc/self/fd`. A plaintext MAIL raises
plaintext_refused, and what ls lists is only 0, 1, 2 and its own
/proc/self/fd directory: no store, no socket, no file of mailward's."""

import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def main():
    with mwtest.Env("alert_command_fds") as env:
        os.chmod(env.dir, 0o777)
        state = env.path("state")
        os.mkdir(state)
        os.chmod(state, 0o777)
        out = env.path("fds.out")
        cmd = env.path("alert.sh")
        with open(cmd, "w") as f:
            f.write("#!/bin/sh\nexec ls -l /proc/self/fd > %s 2>&1\n" % out)
        os.chmod(cmd, 0o755)
        be = env.recorder()
        mw = env.mailward(
            listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port},
                       "out": {"accept_tls": "none", "require_tls": False,
                               "forward": "original-dst", "forward_tls": "policy",
                               "learned_max_age": 30, "mta_sts": True}},
            globals={"alert_command": cmd, "state_dir": state})
        with socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=10) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"MAIL FROM:<a@sender.test>\r\n")
            f.readline()
            s.sendall(b"QUIT\r\n")
            f.readline()
        ok = mwtest.wait_for(lambda: re.search(r"-> /proc/\d+/fd$", read(out), re.M), 15)
        mwtest.check(ok, "the alert command listed no descriptors:\n%s" % mw.log()[-2000:])
        listing = read(out)
        print(listing)
        fds = dict(re.findall(r" (\d+) -> (.*)$", listing, re.M))
        mwtest.check(fds, "no descriptors listed")
        extra = {fd: t for fd, t in fds.items()
                 if int(fd) > 2 and not re.fullmatch(r"/proc/\d+/fd", t)}
        mwtest.check(not extra, "the alert command inherited %r" % extra)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
