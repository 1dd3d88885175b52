#!/usr/bin/python3
"""An alert command that floods its standard output does not take
mailward's event loop (the mail's) for the time it is allowed to run.

The alert command is `exec yes` (coreutils: writes "y" lines until its
output is closed). A plaintext MAIL raises plaintext_refused and starts it.
mailward reads at most 64 KiB of its output and then closes the pipe: yes
ends with SIGPIPE at once (event=alert_command_failed signal=13), and over
the next 3 s mailward uses under 0.3 s of CPU. Before, it read and threw
away everything yes wrote until the 10 s kill: about 75 % of a core."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    with mwtest.Env("alert_command_flood") as env:
        cmd = env.path("alert.sh")
        with open(cmd, "w") as f:
            f.write("#!/bin/sh\nexec yes\n")
        os.chmod(cmd, 0o755)
        be = env.recorder()
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}},
                          globals={"alert_command": cmd})
        with socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=10) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"MAIL FROM:<a@sender.test>\r\n")
            mwtest.check(f.readline().startswith(b"530 "), "MAIL before TLS not refused")
            s.sendall(b"QUIT\r\n")
            f.readline()
        time.sleep(0.5)
        before = cpu_seconds(mw.pid)
        time.sleep(3)
        used = cpu_seconds(mw.pid) - before
        ended = [x for x in mwtest.log_events(mw, "alert_command_failed")]
        print("mailward's CPU over 3 s with the command started: %.2f s; %r"
              % (used, ended), flush=True)
        mwtest.check(used < 0.3, "mailward used %.2f s of CPU in 3 s reading the alert "
                     "command's output" % used)
        mwtest.eq([x.get("signal") for x in ended], ["13"],
                  "alert_command_failed lines (yes ended by SIGPIPE)")
        mwtest.check(int(ended[0].get("output_bytes", "0")) >= 65536,
                     "output_bytes: %r" % ended[0])
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
