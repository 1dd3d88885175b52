#!/usr/bin/python3
"""The alert log is opened as root, before the privilege drop: it must not
be a symbolic link, or whoever can write in its directory (the user
mailward runs as, when alert_log is in state_dir, say) makes root create
and append to any file.

As root, with user = nobody: alert_log names a symbolic link, owned by
nobody, in a directory nobody owns, to a file that does not exist in a
directory only root may write. An earlier build followed it: started, and
root created the target (mode 0640) and appended alerts to it. Now
mailward refuses to start, exit status 1, saying why on stderr, and the
target does not exist. A plain file in the same directory still works
(mailward starts), and a SIGHUP after the file was replaced by a symbolic
link (as the user, after a rotation) keeps writing to the file opened
before and logs event=reopen_alert_log_failed."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def main():
    if not mwtest.is_root():
        mwtest.skip("needs root (the open before the privilege drop)")
    with mwtest.Env("alert_log_symlink") as env:
        be = env.recorder()
        userdir = env.path("state")
        os.makedirs(userdir)
        os.chown(userdir, 65534, 65534)
        rootdir = env.path("root-only")
        os.makedirs(rootdir, mode=0o755)
        target = os.path.join(rootdir, "planted")
        link = os.path.join(userdir, "alerts.json")
        os.symlink(target, link)
        os.lchown(link, 65534, 65534)
        listeners = {"smtp": {"accept_tls": "starttls", "require_tls": "no",
                              "forward": "127.0.0.1:%d" % be.port}}
        mw = env.mailward(listeners=listeners, globals={"alert_log": link}, wait=False)
        status = mw.wait(15)
        print("with a symbolic link: status %s, target created: %s; log %r"
              % (status, os.path.lexists(target), mw.log()[-500:]))
        if status is None:
            mw.kill()
            mwtest.fail("mailward started with alert_log a symbolic link (target "
                        "created by root: %s)" % os.path.lexists(target))
        mwtest.eq(status, 1, "exit status with alert_log a symbolic link")
        mwtest.check("alert_log %s" % link in mw.log() and "symbolic link" in mw.log(),
                     "mailward does not say why: %r" % mw.log())
        mwtest.check(not os.path.lexists(target),
                     "root created the symbolic link's target %s" % target)

        # A plain file: starts; replaced by a link later, SIGHUP keeps the old one.
        os.unlink(link)
        mw = env.mailward(listeners=listeners, globals={"alert_log": link})
        os.rename(link, link + ".1")
        os.symlink(target, link)
        os.lchown(link, 65534, 65534)
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(lambda: "event=reopen_alert_log_failed" in mw.log(), 10),
                     "no event=reopen_alert_log_failed:\n%s" % mw.log()[-2000:])
        mwtest.check(not os.path.lexists(target), "the reopen created %s" % target)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
