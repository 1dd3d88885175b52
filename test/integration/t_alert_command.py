#!/usr/bin/python3
"""alert_command and metrics_file.

1. alert_command = a script that appends its stdin to a file. A plaintext
   MAIL before STARTTLS (plaintext_refused) and a STARTTLS with a command
   pipelined behind it (starttls_injection): the script receives exactly
   those two JSON objects, the same as the alert log's. metrics_file is
   written at start-up (zeros), every 10 s and at exit, in Prometheus text
   format, never leaving its .tmp behind: mailward_alerts_total counts both
   events, the sessions and the delivered message are counted.
2. A command that sleeps 30 s (after saying so on stderr) is killed after
   10 s with its process group, and logged with the start of its output;
   past 4 running and 64 queued, alerts are dropped from the command with
   one "event=alert_command_dropped" line each; the drain timeout kills what
   still runs and mailward exits 0.
3. A command that exits 3 is logged with status=3 and its output; a command
   that is not executable is refused by mailward -t; a background child a
   command leaves in its process group is killed once the command is done.
"""

import json
import os
import re
import smtplib
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
from rawsmtp import Client, wait_alerts  # noqa: E402

NAME = "mw.test.example"
METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+)$')


def user_dir(env, name):
    """A directory mailward can write to after its privilege drop."""
    d = env.path(name)
    os.makedirs(d)
    os.chmod(d, 0o755)
    if mwtest.is_root():
        mwtest._chown(d, "nobody")
    return d


def script(env, name, body):
    path = env.path(name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def parse_metrics(path):
    """{(name, labels): value} from a Prometheus text file; fails on a line
    that is neither a comment nor a sample."""
    out = {}
    with open(path) as f:
        text = f.read()
    mwtest.check(text.endswith("\n"), "metrics file does not end in a newline: %r" % text)
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = METRIC.match(line)
        mwtest.check(m is not None, "not a Prometheus sample line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def alerts_total(metrics, event):
    return metrics.get(("mailward_alerts_total", '{event="%s"}' % event))


def read_lines(path):
    try:
        with open(path) as f:
            return [line for line in f.read().split("\n") if line]
    except FileNotFoundError:
        return []


def plaintext_mail(mw):
    c = Client(mw.port("smtp"))
    mwtest.eq(c.reply().code, 220, "greeting")
    mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO")
    r = c.cmd("MAIL FROM:<alice@sender.test>")
    mwtest.check(r.starts("530 5.7.0"), "plaintext MAIL: expected 530 5.7.0, got %r" % r)
    c.close()


def injection(mw):
    c = Client(mw.port("smtp"))
    mwtest.eq(c.reply().code, 220, "greeting")
    mwtest.eq(c.cmd("EHLO client.test").code, 250, "EHLO")
    c.send(b"STARTTLS\r\nMAIL FROM:<a@evil.test>\r\n")
    closed, data = c.wait_closed(5)
    c.close()
    mwtest.check(data.startswith(b"554 5.7.0") and closed,
                 "STARTTLS injection: expected 554 and close, got %r" % data)


def part1(env):
    hook = user_dir(env, "hook")
    out = os.path.join(hook, "received.jsonl")
    metrics_dir = user_dir(env, "metrics")
    prom = os.path.join(metrics_dir, "mailward.prom")
    cmd = script(env, "append.sh", "cat >> %s\n" % out)
    be = env.recorder()
    mw = env.mailward(
        listeners={"smtp": {"accept_tls": "starttls", "require_tls": "yes",
                            "hostname": NAME, "forward": "127.0.0.1:%d" % be.port}},
        globals={"alert_command": cmd, "metrics_file": prom})

    # Written at start-up, before anything happened. The sockets listen
    # (they are bound as root) a moment before the file is first written as
    # mailward's user: wait for it.
    mwtest.check(mwtest.wait_for(lambda: os.path.exists(prom), 10),
                 "no metrics file after the start")
    m = parse_metrics(prom)
    mwtest.eq(alerts_total(m, "plaintext_refused"), 0, "plaintext_refused at start-up")
    mwtest.eq(m.get(("mailward_sessions_total", "")), 0, "sessions_total at start-up")

    plaintext_mail(mw)
    wait_alerts(mw, "plaintext_refused", 1)
    # Commands run side by side (up to 4 at once), so two alerts close
    # together may append in either order: let the first one's land first.
    mwtest.check(mwtest.wait_for(lambda: len(read_lines(out)) >= 1, 10),
                 "the command received nothing; log:\n%s" % mw.log())
    injection(mw)
    wait_alerts(mw, "starttls_injection", 1)

    lines = mwtest.wait_for(lambda: len(read_lines(out)) >= 2 and read_lines(out), 10)
    mwtest.check(lines, "the command received %r; log:\n%s" % (read_lines(out), mw.log()))
    time.sleep(0.5)
    lines = read_lines(out)
    got = [json.loads(line) for line in lines]
    mwtest.eq([a["event"] for a in got], ["plaintext_refused", "starttls_injection"],
              "events the command received")
    mwtest.eq(got, mw.alerts(), "objects the command received vs the alert log")
    mwtest.eq(got[0].get("domain"), "sender.test", "plaintext_refused domain")
    mwtest.eq(got[1].get("severity"), "critical", "starttls_injection severity")
    mwtest.check("alert_command_failed" not in mw.log() and
                 "alert_command_killed" not in mw.log(),
                 "the command was reported as failing:\n%s" % mw.log())

    # The periodic write (every 10 s) shows both alerts.
    m = mwtest.wait_for(lambda: (alerts_total(parse_metrics(prom), "starttls_injection") == 1
                          and parse_metrics(prom)), 15)
    mwtest.check(m, "metrics not updated within 15 s: %r" % parse_metrics(prom))
    mwtest.eq(alerts_total(m, "plaintext_refused"), 1, "plaintext_refused count")
    mwtest.eq(alerts_total(m, "starttls_injection"), 1, "starttls_injection count")
    mwtest.eq(alerts_total(m, "tls_handshake_failed"), 0, "tls_handshake_failed count")
    mwtest.eq(m.get(("mailward_sessions_total", "")), 2, "sessions_total")
    mwtest.eq(m.get(("mailward_sessions_active", "")), 0, "sessions_active")
    mwtest.eq(m.get(("mailward_messages_total", "")), 0, "messages_total")
    mwtest.eq(sorted(os.listdir(metrics_dir)), ["mailward.prom"], "files in the metrics dir")

    # One delivered message, then stop: the file written at exit counts it.
    s = smtplib.SMTP("127.0.0.1", mw.port("smtp"), timeout=10)
    s.ehlo("client.test")
    s.starttls(context=mwtest.ssl_client_context(env))
    s.ehlo("client.test")
    s.sendmail("alice@sender.test", ["bob@rcpt.test"], b"Subject: m\r\n\r\nhello\r\n")
    s.quit()
    mw.stop()
    m = parse_metrics(prom)
    mwtest.eq(m.get(("mailward_messages_total", "")), 1, "messages_total at exit")
    mwtest.eq(m.get(("mailward_sessions_total", "")), 3, "sessions_total at exit")
    mwtest.eq(m.get(("mailward_sessions_active", "")), 0, "sessions_active at exit")
    mwtest.eq(len(read_lines(out)), 2, "the command ran for a non-alert")


def sleepers():
    """Pids of processes running our sleeper's distinctive sleep."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                if f.read() == b"sleep\x0030.5\x00":
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def part2(env):
    cmd = script(env, "sleeper.sh", "echo going to sleep >&2\nsleep 30.5\n")
    be = env.recorder()
    mw = env.mailward(
        listeners={"smtp": {"accept_tls": "starttls", "require_tls": "yes",
                            "hostname": NAME, "forward": "127.0.0.1:%d" % be.port}},
        globals={"alert_command": cmd, "drain_timeout": 2})
    t0 = time.monotonic()
    plaintext_mail(mw)
    mwtest.check(mwtest.wait_for(lambda: sleepers(), 5), "the sleeper did not start")
    log = mwtest.wait_for(lambda: "event=alert_command_killed" in mw.log() and mw.log(), 16)
    took = time.monotonic() - t0
    mwtest.check(log, "no alert_command_killed within 16 s; log:\n%s" % mw.log())
    mwtest.check(9 <= took <= 15, "killed after %.1f s, expected about 10" % took)
    line = [x for x in log.splitlines() if "event=alert_command_killed" in x][0]
    print("killed: %s" % line)
    for want in ("reason=timeout", "alert=plaintext_refused",
                 "output=going\\x20to\\x20sleep\\x0a"):
        mwtest.check(want in line, "%r not in %r" % (want, line))
    mwtest.check(" warning: " in line, "not at warning level: %r" % line)
    mwtest.check(mwtest.wait_for(lambda: not sleepers(), 3),
                 "the sleeper's child survived the kill: %r" % sleepers())

    # 4 run, 64 wait, the rest is dropped, one line each.
    for _ in range(70):
        plaintext_mail(mw)
    mwtest.check(len(wait_alerts(mw, "plaintext_refused", 71)) == 71, "71 alerts")
    time.sleep(0.5)
    dropped = [x for x in mw.log().splitlines() if "event=alert_command_dropped" in x]
    mwtest.eq(len(dropped), 2, "dropped lines: %r" % dropped)
    mwtest.check("reason=queue_full" in dropped[0], "drop reason: %r" % dropped[0])
    mwtest.eq(len(sleepers()), 4, "sleepers running at once")

    # The drain timeout (2 s) kills the four and drops the queue.
    t0 = time.monotonic()
    log = mw.stop()
    mwtest.check(time.monotonic() - t0 < 8, "stop took %.1f s" % (time.monotonic() - t0))
    mwtest.eq(log.count("reason=shutdown alert="), 4, "commands killed at shutdown")
    mwtest.check("event=alert_command_dropped reason=shutdown count=64" in log,
                 "queue not dropped at shutdown:\n%s" % log[-3000:])
    mwtest.check(mwtest.wait_for(lambda: not sleepers(), 3), "sleepers left after exit")


def part3(env):
    cmd = script(env, "fail.sh", "echo 'bad \"thing\"'\nexit 3\n")
    be = env.recorder()
    mw = env.mailward(
        listeners={"smtp": {"accept_tls": "starttls", "require_tls": "yes",
                            "hostname": NAME, "forward": "127.0.0.1:%d" % be.port}},
        globals={"alert_command": cmd})
    plaintext_mail(mw)
    log = mwtest.wait_for(lambda: "event=alert_command_failed" in mw.log() and mw.log(), 5)
    mwtest.check(log, "no alert_command_failed; log:\n%s" % mw.log())
    line = [x for x in log.splitlines() if "event=alert_command_failed" in x][0]
    mwtest.check("status=3 " in line and "output=bad\\x20\\x22thing\\x22\\x0a" in line
                 and " warning: " in line, "failure line: %r" % line)
    mw.stop()

    noexec = env.path("noexec.sh")
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(noexec, stat.S_IRUSR | stat.S_IWUSR)
    conf, _ = env.mailward_config(
        listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}},
        globals={"alert_command": noexec})
    r = mwtest.run_mailward(["-t", "-c", conf])
    mwtest.eq(r.returncode, 1, "mailward -t with a non-executable alert_command")
    mwtest.check("alert_command %s: not an executable file" % noexec in r.stderr,
                 "-t message: %r" % r.stderr)

    # A command that leaves a child behind in its process group: the child
    # goes when the command has exited, and escapes no limit.
    marker = "%d.%d" % (3000 + os.getpid() % 1000, os.getpid() % 97)
    cmd = script(env, "fork.sh", "cat >/dev/null\nsleep %s >/dev/null 2>&1 &\n"
                 "echo left a child\nexit 0\n" % marker)

    def left():
        r = subprocess.run(["pgrep", "-f", "sleep %s" % marker], capture_output=True,
                           text=True)
        return r.stdout.split()
    mw = env.mailward(
        listeners={"smtp": {"accept_tls": "starttls", "require_tls": "yes",
                            "hostname": NAME, "forward": "127.0.0.1:%d" % be.port}},
        globals={"alert_command": cmd})
    env.on_exit(lambda: [os.kill(int(p), 9) for p in left()])
    plaintext_mail(mw)
    mwtest.check(mwtest.wait_for(lambda: "event=alert_command_done" in mw.log(), 10),
                 "no alert_command_done:\n%s" % mw.log()[-2000:])
    mwtest.check(mwtest.wait_for(lambda: not left(), 3),
                 "the command's background child still runs: %r" % left())
    mw.stop()


def main():
    with mwtest.Env("alert_command") as env:
        part1(env)
        part3(env)
        part2(env)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
