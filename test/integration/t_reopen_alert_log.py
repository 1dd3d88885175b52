#!/usr/bin/python3
"""SIGHUP reopens the alert log, for log rotation (README, "Alerts";
mailward(8), SIGHUP). workers = 2, loopback only; the alerts are
plaintext_refused, from Python's smtplib sending MAIL FROM without STARTTLS.

1. Two alerts land in logs/alerts.json, which mailward made as root at
   start-up (mailward's user may not write it). SIGHUP with nothing
   rotated: no reopen is tried (none logged, no failure), and the next
   alert still lands there.
2. Rotation as README's logrotate recipe does it: alerts.json renamed to
   alerts.json.1 and a new alerts.json of root's that the user's group may
   write ("create 0660 root mailward"); SIGHUP: the
   supervisor and both workers log event=reopen_alert_log, and six more
   alerts (both workers take sessions) all land in the new file, none in
   alerts.json.1.
3. Rotation without a new file, in a directory mailward's user cannot write:
   SIGHUP logs event=reopen_alert_log_failed (the reason, and that the old
   file is kept) in all three processes, and the next alerts still land in
   the file opened before (now alerts.json.2): none is lost.
4. Workers killed and restarted by the supervisor write to the file the
   supervisor reopened last (its own copy is reopened too)."""

import json
import os
import re
import signal
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


def plaintext_attempts(mw, n):
    for _ in range(n):
        s = smtplib.SMTP("127.0.0.1", mw.port("in"), local_hostname="plain.test", timeout=20)
        code, _ = s.mail("a@plain.test")
        mwtest.eq(code, 530, "MAIL FROM before STARTTLS")
        s.close()


def alerts_in(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f.read().splitlines()]
    except FileNotFoundError:
        return []


def wait_count(path, n):
    ok = mwtest.wait_for(lambda: len(alerts_in(path)) >= n, 10)
    got = alerts_in(path)
    mwtest.check(ok, "%d alerts in %s, expected %d" % (len(got), path, n))
    mwtest.check(all(a["event"] == "plaintext_refused" for a in got),
                 "alerts in %s: %r" % (path, got))


def hup_and_wait(mw, event):
    """SIGHUP; wait until the supervisor and both workers logged event."""
    pattern = re.compile(r"mailward\[(\d+)\]: \w+: - event=%s path=" % event)
    before = len(pattern.findall(mw.log()))
    os.kill(mw.pid, signal.SIGHUP)
    ok = mwtest.wait_for(lambda: len(pattern.findall(mw.log())) >= before + 3, 10)
    log = mw.log()
    mwtest.check(ok, "not three processes logged %s:\n%s" % (event, log[-3000:]))
    mwtest.eq(len(set(pattern.findall(log)[before:])), 3, "processes that logged %s" % event)
    return log


def main():
    with mwtest.Env("reopen_alert_log") as env:
        logs = env.path("logs")
        os.makedirs(logs)
        os.chmod(logs, 0o755)
        path = os.path.join(logs, "alerts.json")
        backend = env.recorder()
        mw = env.mailward(listeners={"in": {"forward": "127.0.0.1:%d" % backend.port}},
                          globals={"workers": 2, "alert_log": path})

        # 1
        plaintext_attempts(mw, 2)
        wait_count(path, 2)
        sighups = mw.log().count("event=sighup ")
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(lambda: mw.log().count("event=sighup ") >= sighups + 3,
                                     10), "no event=sighup from three processes")
        mwtest.check("event=reopen_alert_log" not in mw.log(),
                     "a reopen with nothing rotated:\n%s" % mw.log()[-2000:])
        plaintext_attempts(mw, 1)
        wait_count(path, 3)

        # 2
        os.rename(path, path + ".1")
        with open(path, "w"):
            pass
        os.chmod(path, 0o660)
        if mwtest.is_root():
            os.chown(path, 0, mwtest._ids("nobody")[1])
        hup_and_wait(mw, "reopen_alert_log")
        plaintext_attempts(mw, 6)
        wait_count(path, 6)
        mwtest.eq(len(alerts_in(path + ".1")), 3, "alerts in alerts.json.1 after the rotation")

        # 3
        os.rename(path, path + ".2")
        os.chmod(logs, 0o555)
        try:
            log = hup_and_wait(mw, "reopen_alert_log_failed")
        finally:
            os.chmod(logs, 0o755)
        mwtest.check(re.search(r"event=reopen_alert_log_failed path=\S+ reason=\"Permission "
                               r"denied\" action=\"kept writing to the file opened before\"",
                               log), "the failure does not say why and what was kept")
        plaintext_attempts(mw, 2)
        wait_count(path + ".2", 8)
        mwtest.check(not os.path.exists(path), "alerts.json was made again")

        # 4: the supervisor kept alerts.json.2 open too.
        old = mwtest.children(mw.pid)
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        mwtest.check(mwtest.wait_for(lambda: len(set(mwtest.children(mw.pid)) - set(old)) == 2
                                     and mwtest.is_listening(mw.port("in")), 15),
                     "no two new workers: %r" % mwtest.children(mw.pid))
        plaintext_attempts(mw, 2)
        wait_count(path + ".2", 10)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
