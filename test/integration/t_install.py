#!/usr/bin/python3
"""`make install`, `make uninstall` and the systemd unit they install.

1. `make install DESTDIR=<dir> PREFIX=/usr BUILD=<the test build>` with
   make's -o on the binary, so that nothing is built (the test build has
   flags of its own: a source changed since it was built would otherwise be
   rebuilt into it with the default ones): every file lands, nothing else,
   each with its mode; the binary is the test build's, which is left as it
   was; the unit names /usr/sbin/mailward and /etc/mailward/mailward.conf.
   mailward-tlsrpt.service runs /usr/share/mailward/tlsrpt-report once, as
   mailward, with its settings from /etc/mailward/tlsrpt-report.env, no
   capability, write access to /var/lib/mailward/tlsrpt only, and every
   setting of mailward.service that confines it (SystemCallFilter may deny
   more); mailward-tlsrpt.timer starts it daily, a few hours after midnight
   UTC, at a random time within a window, persistently, for timers.target.
   `make -n install` names build/mailward and /usr/local by default, and
   build-lean/mailward with WOLFSSL=lean.
2. A second install leaves a changed mailward.conf and tlsrpt-report.env
   as they are, and says so.
3. systemd-analyze verify has nothing to say about the three units (copies
   whose program paths point into DESTDIR; MANPATH finds the man pages),
   and systemd-analyze calendar reads the timer's OnCalendar as a daily
   time between 01:00 and 05:00 UTC.
4. The installed tlsrpt-report run with the service's command line, its
   ${NAME} and $NAME expanded from the installed tlsrpt-report.env as
   systemd.service(5) says: as shipped (nothing filled in) it refuses, exit
   status 2, saying why; filled in (an organization with a space, an option
   in TLSRPT_OPTIONS) it works on an empty state_dir/tlsrpt, exit 0 and
   nothing logged; as root, run as nobody with no capability and
   NoNewPrivs, and its lock file there is nobody's.
5. As root: systemd-sysusers and systemd-tmpfiles, on an empty --root,
   make the user mailward and /var/lib/mailward, its own, from the
   installed files. In a network namespace of its own: the installed
   binary, run by setpriv(1) with exactly the unit's CapabilityBoundingSet
   and NoNewPrivileges, checks (-t, the unit's ExecStartPre) and starts on the
   installed mailward.conf, changed only where it must be (user nobody, the
   test certificate and key where it names them, the backend's port, the
   alert log's directory; drain_timeout left out, so that the default is
   used) plus an outbound listener with forward = original-dst and a
   state_dir owned by nobody: it listens on 25, 587 and 465, runs as nobody
   with no capability left and NoNewPrivs, relays a message over STARTTLS
   on 25 to an aiosmtpd backend (XCLIENT) in the namespace and takes
   implicit TLS on 465. The alert log is rotated as README's logrotate
   recipe does it (a new file of root's that the user's group may write);
   on SIGHUP (ExecReload) the certificates are read again (the key readable
   through its group, as README says) and the next alert goes to the new
   file. SIGTERM drains within the unit's TimeoutStopSec, which is above
   the default drain_timeout (from the event=draining line) plus 10 s, and
   mailward starts again with the rotated alert log (no CAP_DAC_OVERRIDE
   needed). Without CAP_NET_ADMIN it logs event=no_transparent and starts
   anyway; with it added (the drop-in
   README gives for TPROXY) it does not. Without any one capability of the
   unit's set, start-up fails with exit status 1 and the reason on stderr:
   the set is enough, and none of it is too much.
6. `make uninstall` removes every file install put there but mailward.conf
   and tlsrpt-report.env.

Without root step 5 is skipped, without systemd (systemd-analyze,
systemd-sysusers) step 3 and the first part of 5: the test then ends as
skipped (77) after the others passed."""

import filecmp
import os
import pwd
import re
import shlex
import shutil
import signal
import smtplib
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

REPO = mwtest.REPO
MSG = b"From: a@sender.test\r\nTo: user@rcpt.test\r\nSubject: installed\r\n\r\nhello\r\n"
OUT_PORT = 10026
MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", "WOLFSSL", "BUILD", "CFLAGS",
             "LDFLAGS", "DESTDIR", "PREFIX", "SBINDIR", "DATADIR", "MANDIR", "SYSCONFDIR",
             "UNITDIR", "SYSUSERSDIR", "TMPFILESDIR")

# mailward-tlsrpt.service's command line, PREFIX=/usr.
TLSRPT_EXEC = ("/usr/share/mailward/tlsrpt-report --state-dir /var/lib/mailward "
               "--organization ${TLSRPT_ORGANIZATION} --contact ${TLSRPT_CONTACT} "
               "--from ${TLSRPT_FROM} $TLSRPT_OPTIONS")
# Settings of mailward.service that do not confine it. mailward-tlsrpt.service
# has every other one with the same value, but for these, which it narrows
# (checked on their own).
NOT_CONFINING = {"Type", "ExecStartPre", "ExecStart", "ExecReload", "KillMode",
                 "TimeoutStopSec", "Restart", "RestartSec", "LimitNOFILE", "LogsDirectory"}
NARROWED = {"CapabilityBoundingSet", "ReadWritePaths", "SystemCallFilter"}
# The PATH systemd gives a service (systemd.exec(5)): tlsrpt-report's
# "#!/usr/bin/env python3" is the system's python3 there.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A filled-in tlsrpt-report.env (a space in a value, two options in one).
TLSRPT_SITE = {"TLSRPT_ORGANIZATION": "Example Org", "TLSRPT_CONTACT": "tlsrpt@example.org",
               "TLSRPT_FROM": "tlsrpt-noreply@example.org",
               "TLSRPT_OPTIONS": "--smtp 127.0.0.1:10025 --keep-days 20"}

# What start-up says without each capability the unit gives it.
WITHOUT = {
    "net_bind_service": "cannot listen on :25: Permission denied",
    "setgid": "initgroups: Operation not permitted",
    "setuid": "setresuid: Operation not permitted",
    "setpcap": "cap_drop_bound: Operation not permitted",
}


def build_dir():
    """The test build's directory as make's BUILD (relative to the
    repository when it is inside it, as `make test` names it)."""
    d = os.path.dirname(os.path.abspath(mwtest.MAILWARD))
    rel = os.path.relpath(d, REPO)
    return d if rel.startswith("..") else rel


def make(*args):
    """make in the repository, with nothing of a calling make's flags and
    variables (`make test WOLFSSL=lean` exports WOLFSSL)."""
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    r = subprocess.run(["make", "--no-print-directory", "-C", REPO] + list(args),
                       capture_output=True, text=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL)
    print("make %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr),
          flush=True)
    return r


def tree(root):
    """{relative path: mode} of every file and directory under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = os.lstat(p).st_mode
    return out


def expected_files():
    """{installed path (relative to DESTDIR): (source, mode)}, PREFIX=/usr."""
    out = {
        "usr/sbin/mailward": (mwtest.MAILWARD, 0o755),
        "usr/share/man/man8/mailward.8": ("proxy/mailward.8", 0o644),
        "usr/share/man/man8/tlsrpt-report.8": ("scripts/tlsrpt-report.8", 0o644),
        "usr/share/man/man5/mailward.conf.5": ("proxy/mailward.conf.5", 0o644),
        "etc/mailward/mailward.conf": ("proxy/mailward.conf", 0o644),
        "usr/lib/systemd/system/mailward.service": (None, 0o644),
        "usr/lib/systemd/system/mailward-tlsrpt.service": (None, 0o644),
        "usr/lib/systemd/system/mailward-tlsrpt.timer": ("scripts/mailward-tlsrpt.timer", 0o644),
        "etc/mailward/tlsrpt-report.env": ("scripts/tlsrpt-report.env", 0o644),
        "usr/lib/sysusers.d/mailward.conf": ("scripts/mailward.sysusers", 0o644),
        "usr/lib/tmpfiles.d/mailward.conf": ("scripts/mailward.tmpfiles", 0o644),
        "usr/share/mailward/import-eff-policy": ("scripts/import-eff-policy", 0o755),
        "usr/share/mailward/nft-redirect": ("scripts/nft-redirect", 0o755),
        "usr/share/mailward/tlsrpt-report": ("scripts/tlsrpt-report", 0o755),
    }
    for d, _, files in os.walk(os.path.join(REPO, "policies")):
        for n in files:
            rel = os.path.relpath(os.path.join(d, n), REPO)
            out["usr/share/mailward/" + rel] = (rel, 0o644)
    return out


def check_installed(root, failures):
    want = expected_files()
    got = tree(root)
    files = {p for p, m in got.items() if not stat.S_ISDIR(m)}
    missing = sorted(set(want) - files)
    extra = sorted(files - set(want))
    if missing:
        failures.append("not installed: %r" % missing)
    if extra:
        failures.append("installed but not expected: %r" % extra)
    for path, (src, mode) in sorted(want.items()):
        if path not in got:
            continue
        if got[path] & 0o7777 != mode:
            failures.append("%s: mode %o, expected %o" % (path, got[path] & 0o7777, mode))
        if src is not None and not filecmp.cmp(os.path.join(REPO, src),
                                               os.path.join(root, path), shallow=False):
            failures.append("%s differs from %s" % (path, src))
    for d in ("etc/mailward", "usr/share/mailward", "usr/share/mailward/policies"):
        if d in got and got[d] & 0o7777 != 0o755:
            failures.append("%s/: mode %o, expected 755" % (d, got[d] & 0o7777))


def parse_unit(path):
    """{(section, key): [values in order]} of a unit file."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            k, _, v = line.partition("=")
            out.setdefault((section, k.strip()), []).append(v.strip())
    return out


def bounding_set(unit):
    """CapabilityBoundingSet as systemd reads it (lines merge; an empty
    one resets), as setpriv's names: {"net_bind_service", ...}."""
    caps = set()
    for v in unit.get(("Service", "CapabilityBoundingSet"), []):
        if v == "":
            caps = set()
            continue
        mwtest.check(not v.startswith("~"), "CapabilityBoundingSet=%s: the test reads only "
                     "lists of what is allowed" % v)
        for c in v.split():
            mwtest.check(c.startswith("CAP_"), "CapabilityBoundingSet: %r" % c)
            caps.add(c[4:].lower())
    mwtest.check(caps, "the unit sets no CapabilityBoundingSet")
    return caps


def check_tlsrpt_units(root, main, failures):
    """mailward-tlsrpt.service and .timer as installed, beside mailward.service
    (main, parsed): paths filled in, mailward's user, no capability, and
    every setting that confines mailward.service. Returns (service, timer),
    parsed."""
    udir = os.path.join(root, "usr", "lib", "systemd", "system")
    units = {}
    for name in ("mailward-tlsrpt.service", "mailward-tlsrpt.timer"):
        path = os.path.join(udir, name)
        if not os.path.exists(path):
            mwtest.fail("%s is not installed" % name)
        left = re.findall(r"@[A-Z_]+@", read(path))
        if left:
            failures.append("placeholders left in %s: %r" % (name, left))
        units[name] = parse_unit(path)
    svc, timer = units["mailward-tlsrpt.service"], units["mailward-tlsrpt.timer"]

    # The user that sysusers.d makes and mailward.conf drops to.
    m = re.search(r"(?m)^u (\S+) ", read(os.path.join(REPO, "scripts", "mailward.sysusers")))
    user = m.group(1) if m else None
    mwtest.check(re.search(r"(?m)^user = %s$" % re.escape(user or "?"),
                           read(os.path.join(REPO, "proxy", "mailward.conf"))),
                 "mailward.sysusers's user %r is not mailward.conf's" % user)
    for name, unit, key, want in (
            ("service", svc, ("Service", "Type"), ["oneshot"]),
            ("service", svc, ("Service", "User"), [user]),
            ("service", svc, ("Service", "Group"), [user]),
            ("service", svc, ("Service", "EnvironmentFile"), ["/etc/mailward/tlsrpt-report.env"]),
            ("service", svc, ("Service", "ExecStart"), [TLSRPT_EXEC]),
            ("service", svc, ("Service", "CapabilityBoundingSet"), [""]),
            ("service", svc, ("Service", "AmbientCapabilities"), None),
            ("service", svc, ("Service", "ReadWritePaths"), ["-/var/lib/mailward/tlsrpt"]),
            ("timer", timer, ("Timer", "Unit"), None),
            ("timer", timer, ("Install", "WantedBy"), ["timers.target"])):
        if unit.get(key) != want:
            failures.append("mailward-tlsrpt.%s: [%s] %s is %r, expected %r"
                            % (name, key[0], key[1], unit.get(key), want))
    mwtest.check(("Install", "WantedBy") not in svc,
                 "mailward-tlsrpt.service has an [Install] section: the timer starts it")

    for (sec, key), vals in sorted(main.items()):
        if sec != "Service" or key in NOT_CONFINING or key in NARROWED:
            continue
        if svc.get((sec, key)) != vals:
            failures.append("mailward-tlsrpt.service: %s is %r, mailward.service has %r"
                            % (key, svc.get((sec, key)), vals))
    mf = main.get(("Service", "SystemCallFilter"), [])
    sf = svc.get(("Service", "SystemCallFilter"), [])
    if sf[:len(mf)] != mf or [v for v in sf[len(mf):] if not v.startswith("~")]:
        failures.append("mailward-tlsrpt.service: SystemCallFilter %r is not mailward.service's "
                        "%r with only denials added" % (sf, mf))

    for key in ("OnCalendar", "RandomizedDelaySec", "Persistent"):
        mwtest.eq(len(timer.get(("Timer", key), [])), 1, "mailward-tlsrpt.timer: %s= lines" % key)
    mwtest.check(yes(timer[("Timer", "Persistent")]), "mailward-tlsrpt.timer: Persistent is "
                 "%r" % timer[("Timer", "Persistent")])
    return svc, timer


def check_calendar(sa, timer):
    """The timer's OnCalendar, read by systemd-analyze: daily, at a time
    between 01:00 and 05:00 UTC, and RandomizedDelaySec keeps the run before
    06:00 UTC."""
    spec = timer[("Timer", "OnCalendar")][0]
    r = subprocess.run([sa, "calendar", spec], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    print("systemd-analyze calendar %r: exit %d\n%s%s" % (spec, r.returncode, r.stdout, r.stderr),
          flush=True)
    mwtest.eq(r.returncode, 0, "systemd-analyze calendar %r" % spec)
    m = re.search(r"Normalized form: \*-\*-\* (\d\d):(\d\d):(\d\d) UTC\n", r.stdout)
    mwtest.check(m, "OnCalendar=%s is not one time a day, in UTC" % spec)
    start = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    delay = timer[("Timer", "RandomizedDelaySec")][0]
    r = subprocess.run([sa, "timespan", delay], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    m = re.search(r"(?m)^\s*\S+: (\d+)$", r.stdout)
    mwtest.check(r.returncode == 0 and m, "RandomizedDelaySec=%s: %s%s" % (delay, r.stdout,
                                                                         r.stderr))
    end = start + int(m.group(1)) / 1e6
    print("mailward-tlsrpt.timer: between %02d:%02d and %02d:%02d UTC" % (
        start // 3600, start % 3600 // 60, end // 3600, end % 3600 // 60), flush=True)
    mwtest.check(3600 <= start <= 5 * 3600 and start < end <= 6 * 3600,
                 "mailward-tlsrpt.timer runs from %g h to %g h UTC, not a few hours after "
                 "midnight" % (start / 3600, end / 3600))


def env_file(text):
    """{NAME: value} of an EnvironmentFile= in the simple forms
    systemd.exec(5) describes: comments and blank lines skipped, the value
    stripped, enclosing quotes removed."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        k, _, v = line.partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        out[k.strip()] = v
    return out


def exec_argv(line, values):
    """An ExecStart= line as systemd.service(5) expands it: ${NAME} becomes
    the value, always within one argument; $NAME, a word of its own, the
    value split at whitespace (zero or more arguments)."""
    argv = []
    for w in shlex.split(line):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            argv += shlex.split(values.get(m.group(1), ""))
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                               lambda v: values.get(v.group(1), ""), w))
    return argv


def tlsrpt_service_run(env, root, svc):
    """Step 4: the installed tlsrpt-report run as mailward-tlsrpt.service
    runs it, with the installed tlsrpt-report.env and then a filled-in one."""
    state = env.path("tlsrpt-state")
    os.makedirs(os.path.join(state, "tlsrpt"), 0o750)
    pre = []
    if mwtest.is_root():
        nobody = pwd.getpwnam("nobody")
        for d in (state, os.path.join(state, "tlsrpt")):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        pre = ["setpriv", "--reuid", str(nobody.pw_uid), "--regid", str(nobody.pw_gid),
               "--clear-groups", "--bounding-set", "-all", "--inh-caps", "-all",
               "--no-new-privs", "--"]

    def run(values):
        argv = exec_argv(svc[("Service", "ExecStart")][-1], values)
        argv[0] = os.path.join(root, argv[0].lstrip("/"))
        argv[argv.index("--state-dir") + 1] = state
        r = subprocess.run(pre + argv, capture_output=True, text=True, timeout=60,
                           env=dict(values, PATH=SYSTEMD_PATH), stdin=subprocess.DEVNULL)
        print("%s: exit %d\n%s%s" % (shlex.join(argv), r.returncode, r.stdout, r.stderr),
              flush=True)
        return r

    shipped = env_file(read(os.path.join(root, "etc", "mailward", "tlsrpt-report.env")))
    mwtest.eq(sorted(shipped), sorted(TLSRPT_SITE), "the variables of tlsrpt-report.env")
    r = run(shipped)
    mwtest.eq(r.returncode, 2, "tlsrpt-report's exit status with tlsrpt-report.env as shipped")
    mwtest.check(r.stderr.startswith("tlsrpt-report: --organization: empty"),
                 "tlsrpt-report does not say what is missing: %r" % r.stderr)
    mwtest.eq(os.listdir(os.path.join(state, "tlsrpt")), [], "state_dir/tlsrpt after a refusal")

    r = run(TLSRPT_SITE)
    mwtest.eq((r.returncode, r.stdout, r.stderr), (0, "", ""),
              "tlsrpt-report (exit status, stdout, stderr) with tlsrpt-report.env filled in")
    lock = os.path.join(state, "tlsrpt", ".tlsrpt-report.lock")
    mwtest.check(os.path.exists(lock), "tlsrpt-report did not take its lock in %s" % lock)
    if pre:
        mwtest.eq(os.stat(lock).st_uid, pwd.getpwnam("nobody").pw_uid, "owner of the lock file")


def yes(values):
    return bool(values) and values[-1].lower() in ("yes", "true", "on", "1")


def sanitizer_report(text):
    for m in mwtest.SANITIZER_MARKERS:
        if m in text:
            return text[text.find(m):][:4000]
    return None


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class Confined:
    """The installed mailward as the unit starts it, inside namespace ns:
    `setpriv --bounding-set -all,+CAPS [--no-new-privs] mailward ARGS`."""

    def __init__(self, net, binary, caps, nnp):
        self.net, self.binary, self.caps, self.nnp = net, binary, sorted(caps), nnp
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")

    def argv(self, caps, args):
        bset = ",".join(["-all"] + ["+" + c for c in sorted(caps)])
        return (["setpriv", "--bounding-set", bset] + (["--no-new-privs"] if self.nnp else []) +
                ["--", self.binary] + list(args))

    def run(self, args, caps=None):
        """Run to completion inside the namespace."""
        return self.net.run(self.net.sender, self.argv(self.caps if caps is None else caps,
                                                       args), env=self.env, timeout=60)

    def spawn(self, args, log, caps=None):
        return self.net.spawn(self.net.sender,
                              self.argv(self.caps if caps is None else caps, args),
                              log=log, env=self.env)


def wait_log(path, text, proc, timeout=30):
    return mwtest.wait_for(lambda: text in read(path) or proc.poll() is not None,
                           timeout) and text in read(path)


def stop(proc, log, timeout):
    """SIGTERM, as systemd stops the unit: exit status 0 within timeout."""
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        mwtest.kill_group(proc)
        mwtest.fail("mailward did not exit within %d s of SIGTERM (the unit's "
                    "TimeoutStopSec); its log:\n%s" % (timeout, read(log)[-4000:]))
    rep = sanitizer_report(read(log))
    mwtest.check(rep is None, "sanitizer report in %s:\n%s" % (log, rep))
    mwtest.eq(rc, 0, "exit status after SIGTERM (log:\n%s)" % read(log)[-4000:])


def system_files(env, root):
    """The installed sysusers.d and tmpfiles.d files, applied by systemd's
    own tools to an empty root (--root): the user mailward, and
    /var/lib/mailward as its own, mode 0750."""
    sysroot = env.path("sysroot")
    os.makedirs(os.path.join(sysroot, "etc"))
    for tool, conf, extra in (
            ("systemd-sysusers", "usr/lib/sysusers.d/mailward.conf", []),
            ("systemd-tmpfiles", "usr/lib/tmpfiles.d/mailward.conf", ["--create"])):
        r = subprocess.run([tool, "--root=" + sysroot] + extra + [os.path.join(root, conf)],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        print("%s: exit %d\n%s%s" % (tool, r.returncode, r.stdout, r.stderr), flush=True)
        mwtest.eq(r.returncode, 0, "%s on the installed %s" % (tool, conf))
    users = [line.split(":") for line in read(os.path.join(sysroot, "etc/passwd")).splitlines()]
    users = [u for u in users if u[0] == "mailward"]
    mwtest.eq(len(users), 1, "user mailward made by systemd-sysusers")
    mwtest.eq(users[0][5], "/var/lib/mailward", "mailward's home")
    mwtest.check(users[0][6].endswith("nologin"), "mailward's shell is %r" % users[0][6])
    st = os.stat(os.path.join(sysroot, "var/lib/mailward"))
    mwtest.eq((st.st_uid, st.st_gid, "%o" % (st.st_mode & 0o7777)),
              (int(users[0][2]), int(users[0][3]), "750"),
              "/var/lib/mailward made by systemd-tmpfiles (uid, gid, mode)")


def confined_run(env, root, unit, failures):
    """Step 4 (root): the installed binary under the unit's capabilities."""
    for tool in ("setpriv", "ip"):
        if not shutil.which(tool):
            mwtest.fail("%s is not installed (util-linux, iproute2)" % tool)
    caps = bounding_set(unit)
    nnp = yes(unit.get(("Service", "NoNewPrivileges"), []))
    print("unit: CapabilityBoundingSet %s, NoNewPrivileges %s" % (sorted(caps), nnp), flush=True)
    stop_timeout = float(unit[("Service", "TimeoutStopSec")][-1].rstrip("s"))
    nobody = pwd.getpwnam("nobody")

    net = env.netns(hosts=())
    with net.inside():
        be = env.recorder(xclient=True, hostname="backend.test")

    # The certificate and key where the shipped mailward.conf names them:
    # root's, the key readable by mailward's group (README).
    etc = os.path.join(root, "etc", "mailward")
    cert, key = os.path.join(etc, "mx.example.org.pem"), os.path.join(etc, "mx.example.org.key")
    shutil.copyfile(os.path.join(env.certs, "server.pem"), cert)
    shutil.copyfile(os.path.join(env.certs, "server.key"), key)
    os.chmod(cert, 0o644)
    os.chown(key, 0, nobody.pw_gid)
    os.chmod(key, 0o640)
    # What LogsDirectory= makes (root's) and tmpfiles.d/mailward.conf (the user's).
    logs = env.path("var-log-mailward")
    os.mkdir(logs, 0o755)
    state = env.path("var-lib-mailward")
    os.mkdir(state, 0o750)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)

    text = read(os.path.join(root, "etc", "mailward", "mailward.conf"))
    for pat, repl in ((r"(?m)^user = mailward$", "user = nobody\nstate_dir = " + state),
                      (r"(?m)^alert_log = /var/log/mailward/", "alert_log = %s/" % logs),
                      (r"(?m)^drain_timeout = .*\n", ""),
                      (r"(?m)^(cert|key) = /etc/mailward/", r"\1 = %s/" % etc),
                      (r"(?m)^forward = 127\.0\.0\.1:\d+$",
                       "forward = 127.0.0.1:%d" % be.port)):
        text, n = re.subn(pat, repl, text)
        mwtest.check(n > 0, "the installed mailward.conf has nothing like %r" % pat)
    text += ("\n[out]\nlisten = 127.0.0.1:%d\naccept_tls = none\nrequire_tls = no\n"
             "forward = original-dst\nforward_tls = policy\ndefault_level = encrypt\n"
             "ca_file = %s\n" % (OUT_PORT, os.path.join(env.certs, "ca.pem")))
    conf = env.path("mailward.conf")
    with open(conf, "w") as f:
        f.write(text)
    listen = sorted(int(p) for p in re.findall(r"(?m)^listen = :(\d+)$", text))
    mwtest.eq(listen, [25, 465, 587], "ports of the shipped mailward.conf")

    binary = os.path.join(root, "usr", "sbin", "mailward")
    mw = Confined(net, binary, caps, nnp)

    # ExecStartPre.
    r = mw.run(["-t", "-c", conf])
    print("-t: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr), flush=True)
    mwtest.eq(r.returncode, 0, "mailward -t under the unit's capabilities (%s)" % r.stderr)
    mwtest.eq(r.stdout, "%s: configuration OK\n" % conf, "mailward -t output")
    rep = sanitizer_report(r.stderr)
    mwtest.check(rep is None, "sanitizer report from mailward -t:\n%s" % rep)

    # ExecStart.
    log = env.path("mailward.log")
    p = mw.spawn(["-c", conf], log)
    missing = mwtest.wait_listening(listen + [OUT_PORT], 30,
                                    alive=lambda: p.poll() is None, pid=p.pid)
    mwtest.check(p.poll() is None and not missing,
                 "mailward under the unit's capabilities did not start (exit %r, not "
                 "listening on %r); its log:\n%s" % (p.poll(), missing, read(log)))
    mwtest.check(wait_log(log, "event=start ", p), "no event=start; log:\n%s" % read(log))
    st = mwtest.proc_status(p.pid)
    print("running: " + ", ".join("%s=%s" % (k, st.get(k)) for k in (
        "Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb",
        "NoNewPrivs")), flush=True)
    mwtest.eq(st["Uid"].split(), [str(nobody.pw_uid)] * 4, "Uid after the drop")
    mwtest.eq(st["Gid"].split(), [str(nobody.pw_gid)] * 4, "Gid after the drop")
    for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        mwtest.eq(int(st[k], 16), 0, "%s after the drop" % k)
    mwtest.eq(st["NoNewPrivs"], "1", "NoNewPrivs after the drop")
    text = read(log)
    mwtest.check("event=no_transparent listener=out" in text,
                 "no event=no_transparent without CAP_NET_ADMIN; log:\n%s" % text)
    mwtest.check("learned_unavailable" not in text,
                 "state_dir owned by the user could not be used; log:\n%s" % text)
    alerts = os.path.join(logs, "alerts.json")
    mwtest.check(os.path.exists(alerts), "no alert log in %s" % logs)
    mwtest.eq(os.stat(alerts).st_uid, 0, "owner of the alert log (opened as root)")

    # A message over STARTTLS on 25, to the backend.
    with net.inside():
        s = smtplib.SMTP("127.0.0.1", 25, local_hostname="client.test", timeout=20)
    s.ehlo()
    mwtest.check(s.has_extn("starttls"), "no STARTTLS on 25")
    s.starttls(context=mwtest.ssl_client_context(env))
    s.ehlo()
    refused = s.sendmail("a@sender.test", ["user@rcpt.test"], MSG)
    mwtest.eq(refused, {}, "recipients refused")
    s.quit()
    msgs = be.wait_messages(1, 10)
    mwtest.eq(len(msgs), 1, "messages at the backend")
    mwtest.eq(msgs[0].data, MSG, "message bytes at the backend")
    mwtest.eq((msgs[0].xclient or {}).get("ADDR"), "127.0.0.1", "XCLIENT ADDR")

    # Implicit TLS on 465.
    with net.inside():
        s = smtplib.SMTP_SSL("127.0.0.1", 465, local_hostname="client.test", timeout=20,
                             context=mwtest.ssl_client_context(env))
    code, _ = s.ehlo()
    mwtest.eq(code, 250, "EHLO on 465")
    s.quit()

    # A rotation as README's logrotate recipe does it (create 0660 root
    # mailward), then ExecReload: SIGHUP, handled as the unprivileged user,
    # which reopens the alert log; the next alert goes to the new file.
    os.rename(alerts, alerts + ".1")
    fd = os.open(alerts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
    os.fchown(fd, 0, nobody.pw_gid)
    os.fchmod(fd, 0o660)
    os.close(fd)
    p.send_signal(signal.SIGHUP)
    mwtest.check(wait_log(log, "event=sighup", p, 10), "no event=sighup; log:\n%s" % read(log))
    mwtest.check(p.poll() is None, "mailward exited after SIGHUP; log:\n%s" % read(log))
    mwtest.check("reload_tls_failed" not in read(log),
                 "certificate reload failed; log:\n%s" % read(log))
    with net.inside():
        s = smtplib.SMTP("127.0.0.1", 25, local_hostname="client.test", timeout=20)
    s.ehlo()
    code, text = s.mail("a@sender.test")
    mwtest.eq(code, 530, "MAIL FROM before STARTTLS (%r)" % text)
    s.quit()
    got = mwtest.wait_for(lambda: "plaintext_refused" in read(alerts), 10)
    mwtest.check(got, "no plaintext_refused alert in the reopened %s (it has %r); log:\n%s"
                 % (alerts, read(alerts), read(log)))

    # ExecStop: SIGTERM drains within TimeoutStopSec, which must exceed the
    # default drain_timeout plus the 10 s that workers get on top of it.
    stop(p, log, stop_timeout)
    m = re.search(r"event=draining signal=15 sessions=\d+ timeout=(\d+)", read(log))
    mwtest.check(m, "no event=draining line; log:\n%s" % read(log))
    drain = int(m.group(1))
    print("default drain_timeout %d s, TimeoutStopSec %g s" % (drain, stop_timeout))
    mwtest.check(stop_timeout > drain + 10, "TimeoutStopSec=%g is not above the default "
                 "drain_timeout %d s + 10 s" % (stop_timeout, drain))

    # A restart after the rotation: the alert log is root's, the user's group
    # may write it, and no CAP_DAC_OVERRIDE is needed to open it.
    log2 = env.path("mailward-restart.log")
    p = mw.spawn(["-c", conf], log2)
    mwtest.check(wait_log(log2, "event=start ", p), "no restart after the rotation; "
                 "log:\n%s" % read(log2))
    stop(p, log2, stop_timeout)

    # TPROXY: the unit's set plus CAP_NET_ADMIN (README's drop-in).
    log3 = env.path("mailward-net-admin.log")
    p = mw.spawn(["-c", conf], log3, caps=caps | {"net_admin"})
    mwtest.check(wait_log(log3, "event=start ", p), "no event=start with CAP_NET_ADMIN "
                 "added; log:\n%s" % read(log3))
    mwtest.check("event=no_transparent" not in read(log3),
                 "event=no_transparent with CAP_NET_ADMIN; log:\n%s" % read(log3))
    mwtest.eq(int(mwtest.proc_status(p.pid)["CapEff"], 16), 0,
              "CapEff after the drop (CAP_NET_ADMIN added)")
    stop(p, log3, stop_timeout)

    # Each capability of the set is needed: without it start-up fails, clearly.
    for cap in sorted(caps):
        logn = env.path("mailward-without-%s.log" % cap)
        p = mw.spawn(["-c", conf], logn, caps=caps - {cap})
        missing = mwtest.wait_listening(listen, 30, alive=lambda: p.poll() is None, pid=p.pid)
        # The sockets listen before the privilege drop: the start line or
        # the exit says which it came to.
        mwtest.wait_for(lambda: p.poll() is not None or "event=start " in read(logn), 10)
        if p.poll() is None:
            mwtest.kill_group(p)
            failures.append("mailward starts without CAP_%s (listening: %s): the unit's "
                            "CapabilityBoundingSet allows more than start-up needs"
                            % (cap.upper(), not missing))
            continue
        out = read(logn)
        print("without CAP_%s: exit %d\n%s" % (cap.upper(), p.returncode, out), flush=True)
        if p.returncode != 1:
            failures.append("without CAP_%s: exit status %d, expected 1"
                            % (cap.upper(), p.returncode))
        want = WITHOUT.get(cap, "mailward: ")
        if want not in out:
            failures.append("without CAP_%s: %r is not in its output: %r"
                            % (cap.upper(), want, out))
        rep = sanitizer_report(out)
        if rep:
            failures.append("without CAP_%s: sanitizer report:\n%s" % (cap.upper(), rep))
    be.stop()


def main():
    skipped = []
    failures = []
    build = build_dir()
    binary = os.path.join(REPO, build, "mailward")
    with mwtest.Env("install") as env:
        mwtest.check(os.access(binary, os.X_OK), "%s is not built" % binary)
        before = os.stat(binary)
        root = env.path("root")

        # 1. Install, building nothing.
        r = make("-o", build + "/mailward", "install", "DESTDIR=" + root, "PREFIX=/usr",
                 "BUILD=" + build)
        mwtest.eq(r.returncode, 0, "make install")
        after = os.stat(binary)
        mwtest.eq((after.st_mtime_ns, after.st_size), (before.st_mtime_ns, before.st_size),
                  "the test build's binary (mtime, size) after make install")
        check_installed(root, failures)
        unit_path = os.path.join(root, "usr", "lib", "systemd", "system", "mailward.service")
        unit = parse_unit(unit_path)
        with open(unit_path) as f:
            left = re.findall(r"@[A-Z_]+@", f.read())
        mwtest.eq(left, [], "placeholders left in the unit")
        mwtest.eq(unit.get(("Service", "ExecStart")),
                  ["/usr/sbin/mailward -c /etc/mailward/mailward.conf"], "ExecStart")
        mwtest.eq(unit.get(("Service", "ExecStartPre")),
                  ["/usr/sbin/mailward -t -c /etc/mailward/mailward.conf"], "ExecStartPre")
        mwtest.eq(unit.get(("Service", "ExecReload")), ["/bin/kill -HUP $MAINPID"],
                  "ExecReload")
        mwtest.eq(unit.get(("Service", "Restart")), ["on-failure"], "Restart")
        mwtest.check(("Service", "DynamicUser") not in unit, "the unit sets DynamicUser")
        tlsrpt_svc, tlsrpt_timer = check_tlsrpt_units(root, unit, failures)
        for wolfssl, bdir, prefix in ((None, "build", "/usr/local"),
                                      ("lean", "build-lean", "/usr/local")):
            args = ["-n", "-o", bdir + "/mailward", "install", "DESTDIR=/nonexistent"]
            if wolfssl:
                args.append("WOLFSSL=" + wolfssl)
            r = make(*args)
            want = "install -m 0755 %s/mailward /nonexistent%s/sbin/mailward" % (bdir, prefix)
            if r.returncode != 0 or want not in r.stdout:
                failures.append("make %s does not say %r" % (" ".join(args), want))
            if "/nonexistent/etc/mailward/mailward.conf" not in r.stdout:
                failures.append("make %s: mailward.conf is not put in /etc" % " ".join(args))

        # 2. A second install keeps a changed mailward.conf and tlsrpt-report.env.
        conf = os.path.join(root, "etc", "mailward", "mailward.conf")
        tlsrpt_env = os.path.join(root, "etc", "mailward", "tlsrpt-report.env")
        changed = {}
        for path in (conf, tlsrpt_env):
            with open(path, "a") as f:
                f.write("# changed by the administrator\n")
            changed[path] = read(path)
        r = make("-o", build + "/mailward", "install", "DESTDIR=" + root, "PREFIX=/usr",
                 "BUILD=" + build)
        mwtest.eq(r.returncode, 0, "second make install")
        for path in (conf, tlsrpt_env):
            name = os.path.basename(path)
            mwtest.eq(read(path), changed[path], "%s after a second install" % name)
            mwtest.check("%s exists: not overwritten" % path in r.stdout,
                         "the second install does not say that it kept %s" % name)

        # 3. systemd-analyze verify.
        sa = shutil.which("systemd-analyze")
        if sa is None:
            print("SKIP step: systemd-analyze is not installed (package systemd)", flush=True)
            skipped.append("systemd-analyze verify (systemd-analyze is not installed)")
        else:
            vdir = env.path("verify")
            os.mkdir(vdir)
            names = ("mailward.service", "mailward-tlsrpt.service", "mailward-tlsrpt.timer")
            for name in names:
                text = read(os.path.join(os.path.dirname(unit_path), name))
                for prog in ("/usr/sbin/mailward", "/usr/share/mailward/tlsrpt-report"):
                    text = text.replace(prog, os.path.join(root, prog.lstrip("/")))
                with open(os.path.join(vdir, name), "w") as f:
                    f.write(text)
            venv = dict(os.environ, MANPATH=os.path.join(root, "usr/share/man"))
            man = [] if shutil.which("man") else ["--man=no"]
            if man:
                print("man is not installed: Documentation= is not checked", flush=True)
            r = subprocess.run([sa, "verify"] + man + [os.path.join(vdir, n) for n in names],
                               capture_output=True, text=True, timeout=60, env=venv,
                               stdin=subprocess.DEVNULL)
            print("systemd-analyze verify: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr),
                  flush=True)
            mwtest.eq(r.returncode, 0, "systemd-analyze verify exit status")
            mwtest.eq((r.stdout + r.stderr).strip(), "", "systemd-analyze verify output")
            check_calendar(sa, tlsrpt_timer)

        # 4. tlsrpt-report as mailward-tlsrpt.service runs it.
        tlsrpt_service_run(env, root, tlsrpt_svc)

        # 5. The user and the state directory; the unit's capabilities, as root.
        if mwtest.is_root() and shutil.which("systemd-sysusers") is None:
            print("SKIP step: systemd-sysusers is not installed (package systemd)", flush=True)
            skipped.append("sysusers.d and tmpfiles.d (systemd is not installed)")
        elif mwtest.is_root():
            system_files(env, root)
        if mwtest.is_root():
            confined_run(env, root, unit, failures)
        else:
            print("SKIP step: the unit's capabilities need root", flush=True)
            skipped.append("the unit's capabilities (needs root)")

        # 6. Uninstall: everything but mailward.conf and tlsrpt-report.env
        # (and the files put beside them above) goes.
        r = make("uninstall", "DESTDIR=" + root, "PREFIX=/usr")
        mwtest.eq(r.returncode, 0, "make uninstall")
        files = sorted(p for p, m in tree(root).items() if not stat.S_ISDIR(m))
        kept = ["etc/mailward/mailward.conf", "etc/mailward/tlsrpt-report.env"]
        if mwtest.is_root():
            kept += ["etc/mailward/mx.example.org.key", "etc/mailward/mx.example.org.pem"]
        mwtest.eq(files, sorted(kept), "files left after make uninstall")
        mwtest.check(not os.path.exists(os.path.join(root, "usr/share/mailward")),
                     "usr/share/mailward is left after make uninstall")
        for path in (conf, tlsrpt_env):
            mwtest.eq(read(path), changed[path], "%s after make uninstall"
                      % os.path.basename(path))
            mwtest.check("kept %s" % path in r.stdout, "make uninstall does not say it kept %s"
                         % path)

        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d install checks failed" % len(failures))
    if skipped:
        mwtest.skip("; ".join(skipped))
    print("ok")


if __name__ == "__main__":
    main()
