#!/usr/bin/python3
"""workers = 2: a supervisor and two worker processes on the same listener.

- The supervisor has exactly two children, both mailward, both running as
  the unprivileged user (nobody when the test runs as root) with CapEff 0.
- 20 STARTTLS deliveries from parallel smtplib clients all reach the
  recorder; both workers served some (their pids on the "event=connect"
  log lines) and every session id is distinct and carries its worker's
  index ("w0" or "w1", the same for every session of one pid).
- Plaintext MAILs refused in parallel give one well-formed JSON line each in
  the shared alert log.
- A worker killed with SIGKILL is logged (event=worker_died) and replaced by
  a new process; 20 more deliveries all arrive and the new worker serves
  some of them.
- SIGTERM drains: the supervisor exits 0, no worker is left, and the
  metrics file (written by the supervisor only) counts all 40 messages and
  44 sessions, the killed worker's included, and the 4 alerts.
"""

import os
import pwd
import re
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

CONNECT = re.compile(r"mailward\[(\d+)\]: info: (\S+) event=connect ")


def check_worker(pid, uid):
    st = mwtest.proc_status(pid)
    mwtest.eq(st["Name"], "mailward", "worker %d's name" % pid)
    mwtest.eq(st["Uid"].split(), [str(uid)] * 4, "worker %d's uids" % pid)
    mwtest.eq(int(st["CapEff"], 16), 0, "worker %d's CapEff" % pid)
    mwtest.eq(int(st["CapPrm"], 16), 0, "worker %d's CapPrm" % pid)


def deliver_all(env, mw, tag, n):
    """n STARTTLS deliveries at once; returns the errors."""
    errors = []
    ctx = mwtest.ssl_client_context(env)

    def one(i):
        try:
            s = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname="client.test",
                             timeout=30)
            s.starttls(context=ctx)
            s.ehlo()
            s.sendmail("a@sender.test", ["b@rcpt.test"],
                       ("Subject: %s %d\r\n\r\nmessage %d\r\n" % (tag, i, i)).encode())
            s.quit()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append("%s %d: %r" % (tag, i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def plaintext_refused(mw, n):
    def one():
        c = socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=20)
        f = c.makefile("rb")
        f.readline()
        c.sendall(b"EHLO client.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        c.sendall(b"MAIL FROM:<a@sender.test>\r\n")
        r = f.readline()
        mwtest.check(r.startswith(b"530"), "plaintext MAIL: %r" % r)
        c.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def worker_tag(sid):
    """A session id is 5 hex digits, "w" and the worker's index, a 6-digit counter."""
    return sid[5:-6]


def sessions_by_pid(log):
    out = {}
    for pid, sid in CONNECT.findall(log):
        out.setdefault(int(pid), []).append(sid)
    return out


def main():
    uid = pwd.getpwnam("nobody").pw_uid if mwtest.is_root() else os.getuid()
    with mwtest.Env("workers") as env:
        be = env.recorder()
        prom = mwtest.metrics_file(env)
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}},
                          globals={"workers": 2, "metrics_file": prom})

        mwtest.check(mwtest.wait_for(lambda: len(mwtest.children(mw.pid)) == 2, 10),
                     "supervisor's children: %r; log:\n%s" % (mwtest.children(mw.pid), mw.log()))
        workers = mwtest.children(mw.pid)
        print("supervisor %d, workers %r" % (mw.pid, workers))
        for pid in workers:
            check_worker(pid, uid)
        check_worker(mw.pid, uid)

        errors = deliver_all(env, mw, "first", 20)
        mwtest.check(not errors, "deliveries failed: %r" % errors)
        msgs = be.wait_messages(20, 20)
        mwtest.eq(len(msgs), 20, "messages at the recorder after the first 20")
        by_pid = sessions_by_pid(mw.log())
        print("sessions per pid: %r" % {p: len(s) for p, s in by_pid.items()})
        mwtest.eq(sorted(by_pid), workers, "pids that served sessions")
        sids = [sid for s in by_pid.values() for sid in s]
        mwtest.eq(len(set(sids)), 20, "distinct session ids")
        for pid, s in by_pid.items():
            tags = {worker_tag(sid) for sid in s}
            mwtest.eq(len(tags), 1, "worker tags in the session ids of pid %d" % pid)
        tags = {worker_tag(s[0]) for s in by_pid.values()}
        mwtest.eq(tags, {"w0", "w1"}, "worker tags")

        plaintext_refused(mw, 4)
        alerts = mw.alerts()  # fails on a line that is not one JSON object
        mwtest.eq([a["event"] for a in alerts], ["plaintext_refused"] * 4, "alert log")

        # Let the victim hand its counters over (every second) before it dies.
        time.sleep(1.5)
        victim = workers[0]
        os.kill(victim, 9)
        def replaced():
            kids = mwtest.children(mw.pid)
            return len(kids) == 2 and victim not in kids

        mwtest.check(mwtest.wait_for(replaced, 10),
                     "no new worker after SIGKILL: children %r; log:\n%s"
                     % (mwtest.children(mw.pid), mw.log()[-3000:]))
        mwtest.check(re.search(r"event=worker_died worker=\d pid=%d signal=9 " % victim,
                               mw.log()), "no worker_died line for %d" % victim)
        new = [p for p in mwtest.children(mw.pid) if p not in workers]
        mwtest.eq(len(new), 1, "new workers")
        check_worker(new[0], uid)
        print("worker %d killed, %d started" % (victim, new[0]))

        errors = deliver_all(env, mw, "second", 20)
        mwtest.check(not errors, "deliveries after the restart failed: %r" % errors)
        mwtest.eq(len(be.wait_messages(40, 20)), 40, "messages at the recorder")
        by_pid = sessions_by_pid(mw.log())
        mwtest.check(new[0] in by_pid, "the new worker served no session: %r"
                     % {p: len(s) for p, s in by_pid.items()})

        live = mwtest.children(mw.pid)
        log = mw.stop()
        for pid in live:
            mwtest.check(not os.path.exists("/proc/%d" % pid), "worker %d still runs" % pid)
        mwtest.check("event=stopped workers=2" in log, "no supervisor stop line")
        m = mwtest.read_metrics(prom)
        print("metrics: %r" % m)
        mwtest.eq(m.get("mailward_messages_total"), 40.0, "mailward_messages_total")
        mwtest.eq(m.get("mailward_sessions_total"), 44.0, "mailward_sessions_total")
        mwtest.eq(m.get("mailward_sessions_active"), 0.0, "mailward_sessions_active")
        mwtest.eq(m.get('mailward_alerts_total{event="plaintext_refused"}'), 4.0,
                  "plaintext_refused alerts")
        mwtest.eq([m.get('mailward_sessions_refused_total{reason="%s"}' % r)
                   for r in ("file_descriptors", "max_sessions", "max_per_client")],
                  [0.0, 0.0, 0.0], "sessions refused, by reason")
    print("ok")


if __name__ == "__main__":
    main()
