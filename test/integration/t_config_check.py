#!/usr/bin/python3
"""mailward -t checks a configuration without starting: exit 0 and
"FILE: configuration OK" on stdout for a good one; exit 1 and exactly one
"file:line: message" line on stderr per error (the line of the offending key)
for broken ones (two listeners on one address and an alert_command that
does not exist among them); run as root, a user that does not exist, at
the line of user.  The README's example configurations (the
indented blocks that start with a section header and are not cut short
with "..."), with their files pointed at the test's, pass -t as they
stand, inline "# ..." comments and all.  -V prints "mailward VERSION" and a wolfSSL line, -h the
usage on stdout (exit 0), an unknown option the usage on stderr (exit 2)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

GOOD = """\
# a good configuration
[mailward]
user = nobody
log_level = info
drain_timeout = 5

[smtp]
listen = 127.0.0.1:{port1}
accept_tls = starttls
require_tls = yes
cert = {certs}/server.pem
key = {certs}/server.key
forward = 127.0.0.1:10025
client_identity = xclient
max_line = 1024

[smtps]
listen = 127.0.0.1:{port2}
accept_tls = implicit
cert = {certs}/server-rsa.pem
key = {certs}/server-rsa.key
forward = 127.0.0.1:10025
client_identity = proxy
require_tls = on
"""

# (what, text, line of the error, words the message must contain)
BROKEN = [
    ("unknown global key", "[mailward]\nuser = nobody\nfrobnicate = 1\n[smtp]\n"
     "listen = 127.0.0.1:2525\ncert = {certs}/server.pem\nkey = {certs}/server.key\n"
     "forward = 127.0.0.1:10025\n", 3, ["frobnicate"]),
    ("unknown listener key", "[mailward]\n[smtp]\nlisten = 127.0.0.1:2525\n"
     "cert = {certs}/server.pem\nkey = {certs}/server.key\nforward = 127.0.0.1:10025\n"
     "forwad_tls = none\n", 7, ["forwad_tls"]),
    ("bad boolean", "[smtp]\nlisten = 127.0.0.1:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nrequire_tls = maybe\nforward = 127.0.0.1:10025\n", 5,
     ["require_tls"]),
    ("bad accept_tls", "[smtp]\nlisten = 127.0.0.1:2525\naccept_tls = sometimes\n"
     "cert = {certs}/server.pem\nkey = {certs}/server.key\nforward = 127.0.0.1:10025\n", 3,
     ["accept_tls"]),
    ("require_tls without TLS", "[smtp]\nlisten = 127.0.0.1:2525\naccept_tls = none\n"
     "require_tls = yes\nforward = 127.0.0.1:10025\n", None, ["require_tls"]),
    ("bad client_identity", "[smtp]\nlisten = 127.0.0.1:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nforward = 127.0.0.1:10025\nclient_identity = carrier-pigeon\n",
     6, ["client_identity"]),
    ("max_line below 512", "[smtp]\nlisten = 127.0.0.1:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nforward = 127.0.0.1:10025\nmax_line = 100\n", 6, ["max_line"]),
    ("bad number", "[smtp]\nlisten = 127.0.0.1:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nforward = 127.0.0.1:10025\ntimeout_data = soon\n", 6,
     ["timeout_data"]),
    ("listen without port", "[smtp]\nlisten = 127.0.0.1\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nforward = 127.0.0.1:10025\n", 2, ["listen"]),
    ("missing forward", "[smtp]\nlisten = 127.0.0.1:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\n", None, ["forward"]),
    ("missing cert", "[smtp]\nlisten = 127.0.0.1:2525\naccept_tls = implicit\n"
     "key = {certs}/server.key\nforward = 127.0.0.1:10025\n", None, ["cert"]),
    ("not INI", "[smtp]\nlisten = 127.0.0.1:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nthis line is not ini\nforward = 127.0.0.1:10025\n", 5, []),
    ("alert_command that does not exist", "[mailward]\nuser = nobody\n"
     "alert_command = /nonexistent/hook\n[smtp]\nlisten = 127.0.0.1:2525\n"
     "cert = {certs}/server.pem\nkey = {certs}/server.key\nforward = 127.0.0.1:10025\n", 3,
     ["alert_command", "No such file"]),
    ("two listeners on one address", "[a]\nlisten = 0.0.0.0:2525\ncert = {certs}/server.pem\n"
     "key = {certs}/server.key\nforward = 127.0.0.1:10025\n[b]\nlisten = 127.0.0.1:2525\n"
     "cert = {certs}/server.pem\nkey = {certs}/server.key\nforward = 127.0.0.1:10025\n", 7,
     ["listens on 0.0.0.0:2525"]),
]

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README")


def readme_examples(env):
    """The README's whole example configurations, as texts with their
    files replaced by the test's."""
    blocks, cur = [], None
    with open(README) as f:
        for line in f:
            if cur is None and line.startswith("    ["):
                cur = []
            if cur is not None and (line.startswith("    ") or line.strip() == ""):
                cur.append(line[4:])
                continue
            if cur is not None:
                blocks.append("".join(cur))
                cur = None
    subst = [("/etc/mailward/cert.pem", os.path.join(env.certs, "server.pem")),
             ("/etc/mailward/key.pem", os.path.join(env.certs, "server.key")),
             ("/etc/mailward/tls.policy", os.path.join(os.path.dirname(README), "policies",
                                                       "example.policy")),
             ("/var/log/mailward/alerts.json", env.path("alerts.json")),
             ("user = mailward", "user = nobody")]
    out = []
    for b in blocks:
        if re.search(r"^\.\.\.$", b, re.M):
            continue
        for a, z in subst:
            b = b.replace(a, z)
        out.append(b)
    return out


def main():
    failures = []
    with mwtest.Env("config_check") as env:
        good = env.path("good.conf")
        with open(good, "w") as f:
            f.write(GOOD.format(certs=env.certs, port1=mwtest.free_port(),
                                port2=mwtest.free_port()))
        r = mwtest.run_mailward(["-t", "-c", good])
        print("good: exit %d\nstdout: %sstderr: %s" % (r.returncode, r.stdout, r.stderr))
        if r.returncode != 0 or r.stdout.strip() != "%s: configuration OK" % good:
            failures.append("good configuration: exit %d, stdout %r, stderr %r"
                            % (r.returncode, r.stdout, r.stderr))

        examples = readme_examples(env)
        mwtest.check(len(examples) >= 2, "README: %d example configurations" % len(examples))
        for i, text in enumerate(examples):
            path = env.path("readme-%d.conf" % i)
            with open(path, "w") as f:
                f.write(text)
            r = mwtest.run_mailward(["-t", "-c", path])
            print("README example %d: exit %d\nstderr: %s" % (i, r.returncode, r.stderr))
            if r.returncode != 0 or r.stdout.strip() != "%s: configuration OK" % path:
                failures.append("README example %d: exit %d, stderr %r"
                                % (i, r.returncode, r.stderr))

        for i, (what, text, line, words) in enumerate(BROKEN):
            path = env.path("broken-%d.conf" % i)
            with open(path, "w") as f:
                f.write(text.format(certs=env.certs))
            r = mwtest.run_mailward(["-t", "-c", path])
            print("%s: exit %d\nstdout: %r\nstderr: %r" % (what, r.returncode, r.stdout, r.stderr))
            errs = [l for l in r.stderr.splitlines() if l.strip()]
            if r.returncode != 1:
                failures.append("%s: exit %d, expected 1" % (what, r.returncode))
            if len(errs) != 1:
                failures.append("%s: %d lines on stderr, expected one: %r" % (what, len(errs), errs))
            for e in errs:
                m = re.match(r"^(.+?):(\d+): (.+)$", e)
                if not m or m.group(1) != path:
                    failures.append("%s: not a %s:LINE: message line: %r" % (what, path, e))
                    continue
                if line is not None and int(m.group(2)) != line:
                    failures.append("%s: error at line %s, expected %d: %r"
                                    % (what, m.group(2), line, e))
                for w in words:
                    if w not in m.group(3):
                        failures.append("%s: message does not name %r: %r" % (what, w, e))
            if "configuration OK" in r.stdout:
                failures.append("%s: 'configuration OK' printed" % what)

        # An outbound listener's policy table: its errors come as POLICY:LINE: message,
        # an ignored attribute (ciphers=) gets a warning, and dane is a level like
        # the others.
        policy = env.path("tls.policy")
        with open(policy, "w") as f:
            f.write("# comment\nbank.example secure\nbroken.example sometimes\n"
                    "old.example encrypt ciphers=high\ndane.example dane\n")
        out = env.path("outbound.conf")
        with open(out, "w") as f:
            f.write("[mailward]\nuser = nobody\n"
                    "[out]\nlisten = 127.0.0.1:%d\naccept_tls = none\nrequire_tls = no\n"
                    "forward = original-dst\nforward_tls = policy\npolicy = %s\n"
                    % (mwtest.free_port(), policy))
        r = mwtest.run_mailward(["-t", "-c", out])
        print("bad policy: exit %d\nstderr: %r" % (r.returncode, r.stderr))
        if r.returncode != 1 or not re.search(r"^%s:3: .*sometimes" % re.escape(policy),
                                              r.stderr, re.M):
            failures.append("policy error not reported as %s:3: ...: %r" % (policy, r.stderr))
        if not re.search(r"^%s:4: warning: .*ciphers" % re.escape(policy), r.stderr, re.M):
            failures.append("no warning for ciphers= at %s:4: %r" % (policy, r.stderr))
        if re.search(r"^%s:5:" % re.escape(policy), r.stderr, re.M):
            failures.append("dane at %s:5 reported: %r" % (policy, r.stderr))
        with open(policy, "w") as f:
            f.write("bank.example secure\n")
        r = mwtest.run_mailward(["-t", "-c", out])
        if r.returncode != 0 or "configuration OK" not in r.stdout:
            failures.append("good outbound config: exit %d, %r %r"
                            % (r.returncode, r.stdout, r.stderr))

        # A user that does not exist: a start as root would fail, so -t (as
        # root) does too.
        if mwtest.is_root():
            nouser = env.path("nouser.conf")
            with open(good) as f, open(nouser, "w") as g:
                g.write(f.read().replace("user = nobody", "user = mwtest-no-such-user"))
            r = mwtest.run_mailward(["-t", "-c", nouser])
            print("no such user: exit %d stderr %r" % (r.returncode, r.stderr))
            want = "%s:3: user 'mwtest-no-such-user': no such user\n" % nouser
            if r.returncode != 1 or r.stderr != want or "OK" in r.stdout:
                failures.append("-t with a user that does not exist: exit %d, %r %r"
                                % (r.returncode, r.stdout, r.stderr))

        missing = env.path("does-not-exist.conf")
        r = mwtest.run_mailward(["-t", "-c", missing])
        print("missing file: exit %d stderr %r" % (r.returncode, r.stderr))
        if r.returncode != 1 or missing not in r.stderr:
            failures.append("missing file: exit %d, stderr %r" % (r.returncode, r.stderr))

        r = mwtest.run_mailward(["-V"])
        print("-V: exit %d %r" % (r.returncode, r.stdout))
        lines = r.stdout.splitlines()
        if r.returncode != 0 or len(lines) < 2 or not re.match(r"^mailward \d+\.\d+\.\d+", lines[0]) \
                or not lines[1].startswith("wolfSSL "):
            failures.append("-V: exit %d, stdout %r" % (r.returncode, r.stdout))
        r = mwtest.run_mailward(["-h"])
        print("-h: exit %d %r" % (r.returncode, r.stdout))
        if r.returncode != 0 or "usage" not in r.stdout.lower() or "-c" not in r.stdout \
                or r.stderr:
            failures.append("-h: exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout,
                                                                   r.stderr))
        r = mwtest.run_mailward(["-Z"])
        print("-Z: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
        if r.returncode != 2 or "usage" not in r.stderr.lower() or r.stdout:
            failures.append("unknown option: exit %d, stdout %r, stderr %r"
                            % (r.returncode, r.stdout, r.stderr))
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d configuration checks failed" % len(failures))
    print("ok")


if __name__ == "__main__":
    main()
