#!/usr/bin/python3
"""Invariant 6: started as root with user = nobody, mailward runs as nobody
(real, effective, saved and filesystem uid and gid; no supplementary groups
but nogroup) with no capability at all (CapEff, CapPrm, CapInh, CapBnd,
CapAmb 0) and NoNewPrivs 1, and still serves a session.  With user = root
and no allow_root it refuses to start (exit 1, "refusing to run as root"),
listening on nothing.  With allow_root = yes it runs as root but still with
no capability and NoNewPrivs 1.  With a user of its own (made for the test,
and removed) that is also a member of a group of its own in /etc/group,
mailward keeps that supplementary group, as mailward(8) says: a key file
root:that-group, mode 0640, is read again on SIGHUP (event=reload_tls).
Started as nobody (setpriv) with user = daemon, it runs as nobody and logs
a warning that user is ignored (event=user_ignored user=daemon); with
user = nobody it logs none."""

import grp
import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"


def check_caps(st, what, failures):
    for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        if k in st and int(st[k], 16) != 0:
            failures.append("%s: %s = %s, expected 0" % (what, k, st[k]))
    if st.get("NoNewPrivs") != "1":
        failures.append("%s: NoNewPrivs = %s, expected 1" % (what, st.get("NoNewPrivs")))


def main():
    if os.geteuid() != 0:
        mwtest.skip("needs root (privilege drop)")
    nobody = pwd.getpwnam("nobody")
    failures = []
    with mwtest.Env("privdrop") as env:
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        listener = {"smtp": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd}}

        mw = env.mailward(listeners=listener, globals={"user": "nobody"})
        time.sleep(0.5)
        st = mwtest.proc_status(mw.pid)
        print("user = nobody: " + ", ".join("%s=%s" % (k, st.get(k)) for k in (
            "Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb",
            "NoNewPrivs")))
        want_uid = " ".join([str(nobody.pw_uid)] * 4)
        want_gid = " ".join([str(nobody.pw_gid)] * 4)
        if " ".join(st["Uid"].split()) != want_uid:
            failures.append("Uid %r, expected %r" % (st["Uid"], want_uid))
        if " ".join(st["Gid"].split()) != want_gid:
            failures.append("Gid %r, expected %r" % (st["Gid"], want_gid))
        if set(st.get("Groups", "").split()) - {str(nobody.pw_gid)}:
            failures.append("supplementary groups kept: %r" % st["Groups"])
        check_caps(st, "user = nobody", failures)
        # Still serving, after the drop.
        s = smtplib.SMTP("127.0.0.1", mw.port("smtp"), local_hostname="client.test", timeout=20)
        s.starttls(context=mwtest.ssl_client_context(env))
        s.ehlo()
        s.sendmail("a@sender.test", ["b@rcpt.test"], b"Subject: after the drop\r\n\r\nhi\r\n")
        s.quit()
        if len(be.wait_messages(1, 10)) != 1:
            failures.append("no message delivered after the privilege drop")
        mw.stop()

        # user = root without allow_root: refused.
        port = mwtest.free_port()
        conf, _ = env.mailward_config({"smtp": dict(listener["smtp"],
                                                    listen="127.0.0.1:%d" % port)},
                                      {"user": "root"})
        r = mwtest.run_mailward(["-c", conf], timeout=20)
        print("user = root: exit %d, stderr %r" % (r.returncode, r.stderr))
        if r.returncode != 1:
            failures.append("user = root without allow_root: exit %d, expected 1" % r.returncode)
        if "refusing to run as root" not in r.stderr:
            failures.append("user = root: no 'refusing to run as root' on stderr: %r" % r.stderr)

        # allow_root = yes: runs as root, still without capabilities.
        mw = env.mailward(listeners=listener, globals={"user": "root", "allow_root": "yes"})
        time.sleep(0.5)
        st = mwtest.proc_status(mw.pid)
        print("allow_root: Uid=%s CapEff=%s CapPrm=%s CapBnd=%s NoNewPrivs=%s"
              % (st["Uid"], st["CapEff"], st["CapPrm"], st["CapBnd"], st["NoNewPrivs"]))
        check_caps(st, "allow_root = yes", failures)
        mw.stop()

        # A user with a supplementary group (the key's, as Debian's ssl-cert).
        user = group = "mwtest%d" % os.getpid()
        r = subprocess.run(["groupadd", "--system", group], capture_output=True, text=True)
        mwtest.check(r.returncode == 0, "groupadd: %s" % r.stderr)
        env.on_exit(lambda: subprocess.run(["groupdel", group], capture_output=True))
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", "--user-group", "--groups", group,
                            user + "u"], capture_output=True, text=True)
        mwtest.check(r.returncode == 0, "useradd: %s" % r.stderr)
        env.on_exit(lambda: subprocess.run(["userdel", user + "u"], capture_output=True))
        key = env.path("group.key")
        shutil.copy(os.path.join(env.certs, "server.key"), key)
        os.chown(key, 0, grp.getgrnam(group).gr_gid)
        os.chmod(key, 0o640)
        mw = env.mailward(listeners={"smtp": dict(listener["smtp"], key=key)},
                          globals={"user": user + "u"})
        st = mwtest.proc_status(mw.pid)
        print("user %su: Groups=%s" % (user, st.get("Groups")))
        if str(grp.getgrnam(group).gr_gid) not in st.get("Groups", "").split():
            failures.append("the user's group %s is not among Groups %r"
                            % (group, st.get("Groups")))
        os.kill(mw.pid, signal.SIGHUP)
        if not mwtest.wait_for(lambda: "event=reload_tls " in mw.log() or
                               "event=reload_tls_failed" in mw.log(), 10):
            failures.append("no reload_tls line after SIGHUP")
        elif "event=reload_tls_failed" in mw.log():
            failures.append("the key root:%s 0640 was not read again: %s" % (
                group, [x for x in mw.log().splitlines() if "reload_tls" in x]))
        mw.stop()

        # Started as another user than root: user is ignored, with a warning
        # if it names someone else.
        os.chmod(env.dir, 0o777)
        plain = {"smtp": {"accept_tls": "none", "require_tls": False, "forward": fwd}}
        setpriv = ["setpriv", "--reuid=nobody", "--regid=%d" % nobody.pw_gid,
                   "--clear-groups"]
        for user, warned in (("daemon", True), ("nobody", False)):
            mw = env.mailward(listeners=plain, globals={"user": user}, wrap=setpriv)
            uid = mwtest.proc_status(mw.pid)["Uid"].split()[0]
            mw.stop()
            lines = [x for x in mw.log().splitlines() if "event=user_ignored" in x]
            print("started as nobody, user = %s: uid %s, %r" % (user, uid, lines))
            if uid != str(nobody.pw_uid):
                failures.append("started as nobody, user = %s: uid %s" % (user, uid))
            if warned and not (len(lines) == 1 and " warning: " in lines[0] and
                               "user=daemon" in lines[0]):
                failures.append("started as nobody with user = daemon: no warning "
                                "that user is ignored: %r" % lines)
            if not warned and lines:
                failures.append("started as nobody with user = nobody: %r" % lines)

        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d privilege checks failed" % len(failures))
    print("ok")


if __name__ == "__main__":
    main()
