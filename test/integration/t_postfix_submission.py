#!/usr/bin/python3
"""README's submission recipe, run for real: Postfix's smtpd with Cyrus SASL
(a sasldb made by saslpasswd2 in the test's directory, PLAIN and LOGIN)
behind two mailward listeners, STARTTLS ("587") and implicit TLS ("465"),
client_identity = xclient, on a loopback service with -o
smtpd_tls_auth_only=no, -o smtpd_sasl_security_options=
$smtpd_sasl_tls_security_options (main.cf forbids plaintext mechanisms
without TLS, as Postfix's SASL_README advises, and Postfix's leg is
plaintext) and smtpd_relay_restrictions = permit_sasl_authenticated,
reject_unauth_destination.  mynetworks is
127.0.0.1/32 (mailward's own address, allowed XCLIENT); the clients come
from 127.0.0.2, so they may relay only once authenticated.  Mail that
Postfix relays goes to smtp-sink on loopback (default_transport), nothing
leaves the machine.

Checked with smtplib and swaks, from 127.0.0.2:
- before TLS, EHLO shows no AUTH and "AUTH PLAIN ..." gets mailward's 530
  5.7.0; Postfix never sees an AUTH;
- after STARTTLS, AUTH PLAIN with the right password gets Postfix's 235 and
  a message to an outside recipient is accepted and relayed to the sink;
- on the implicit listener, swaks' AUTH LOGIN gets 235 and its message is
  accepted; smtplib's AUTH LOGIN too;
- a wrong password (PLAIN, LOGIN) gets Postfix's 535 5.7.8;
- without AUTH, an outside recipient gets Postfix's 554 5.7.1 relay refusal
  (a local one is accepted: the refusal is about relaying);
- Postfix's maillog names the real client [127.0.0.2] with sasl_method and
  sasl_username for each authenticated message, and logs the failures
  against [127.0.0.2], not mailward's 127.0.0.1.
"""

import base64
import glob
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"
REALM = "test.example"
USER, PASSWORD = "alice", "Subm1ssion-pw-4410"
LOGIN = "%s@%s" % (USER, REALM)
CLIENT_ADDR = "127.0.0.2"
OUTSIDE = "someone@outside.example"
LOCAL = "user@test.example"


def make_sasldb(env):
    """A sasldb2 holding USER@REALM, readable by postfix only, and the
    smtpd.conf that points Postfix's smtpd (Cyrus SASL, application name
    "smtpd") at it, for $config_directory/sasl/smtpd.conf."""
    for tool in ("saslpasswd2", "sasldblistusers2"):
        if not shutil.which(tool):
            mwtest.skip("%s is not installed (Debian: sasl2-bin)" % tool)
    for mech in ("plain", "login"):
        if not glob.glob("/usr/lib/*/sasl2/lib%s.so*" % mech) + \
                glob.glob("/usr/lib/sasl2/lib%s.so*" % mech):
            mwtest.skip("Cyrus SASL's %s mechanism is not installed (Debian: libsasl2-modules)"
                        % mech.upper())
    d = env.path("sasl")
    os.makedirs(d)
    os.chmod(d, 0o755)
    db = os.path.join(d, "sasldb2")
    # Cyrus SASL may look the host's name up; in a namespace of its own,
    # no such look-up can leave the machine.
    pre = ["unshare", "-n"] if shutil.which("unshare") else []
    r = subprocess.run(pre + ["saslpasswd2", "-p", "-c", "-f", db, "-u", REALM, USER],
                       input=PASSWORD, capture_output=True, text=True, timeout=30)
    mwtest.check(r.returncode == 0, "saslpasswd2: %s%s" % (r.stdout, r.stderr))
    r = subprocess.run(["sasldblistusers2", "-f", db], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    print("sasldb2: %s" % r.stdout.strip())
    mwtest.check(LOGIN + ":" in r.stdout, "sasldb2 does not hold %s: %r" % (LOGIN, r.stdout))
    pw = pwd.getpwnam("postfix")
    os.chown(db, pw.pw_uid, pw.pw_gid)
    os.chmod(db, 0o600)
    # The plugins (PLAIN, LOGIN: libsasl2-modules; sasldb:
    # libsasl2-modules-db) are found where the library was built to look.
    return ("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
            "sasldb_path: %s\nmech_list: PLAIN LOGIN\n" % db)


def plain(user, password):
    return base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()


def connect(env, mw, listener):
    ctx = mwtest.ssl_client_context(env)
    host, port = mw.addr(listener)
    if listener == "submissions":
        s = smtplib.SMTP_SSL(host, port, local_hostname="client.submission.test", timeout=30,
                             source_address=(CLIENT_ADDR, 0), context=ctx)
    else:
        s = smtplib.SMTP(host, port, local_hostname="client.submission.test", timeout=30,
                         source_address=(CLIENT_ADDR, 0))
        s.ehlo()
        s.starttls(context=ctx)
    s.ehlo()
    return s


def message(subject):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@mwtest>\r\n\r\n"
            "sent after AUTH through mailward\r\n"
            % (LOGIN, OUTSIDE, subject, subject.replace(" ", "-"))).encode()


def start(env):
    """Postfix with SASL (its submission service) behind mailward's two
    listeners; returns (pf, sink, mw)."""
    smtpd_conf = make_sasldb(env)
    sink = env.smtp_sink()
    # README, "Deploying in front of Postfix": the submission service on
    # loopback, trusting mailward's XCLIENT, without TLS (mailward's),
    # with SASL, smtpd_tls_auth_only=no and, as Postfix's leg is plaintext,
    # the security options main.cf gives SASL over TLS.
    pf = env.postfix(smtpd_options={
        "smtpd_authorized_xclient_hosts": "127.0.0.1",
        "smtpd_tls_security_level": "none",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "cyrus",
        "smtpd_sasl_path": "smtpd",
        "smtpd_sasl_local_domain": REALM,
        "smtpd_sasl_security_options": "$smtpd_sasl_tls_security_options",
        "smtpd_tls_auth_only": "no",
        "smtpd_relay_restrictions": "permit_sasl_authenticated,reject_unauth_destination",
    }, files={"sasl/smtpd.conf": smtpd_conf}, main={
        # Debian's Postfix looks there whatever this says.
        "cyrus_sasl_config_path": "$config_directory/sasl",
        # Postfix's SASL_README: no plaintext password without TLS.  Without
        # the override above, no mechanism is left for the service, and each
        # of its smtpd processes exits ("fatal: no SASL authentication
        # mechanisms").
        "smtpd_sasl_security_options": "noanonymous, noplaintext",
        "smtpd_sasl_tls_security_options": "noanonymous",
        "mynetworks": "127.0.0.1/32",
        # All that Postfix relays goes to smtp-sink on loopback.
        "default_transport": "smtp:[127.0.0.1]:%d" % sink.port,
    })
    fwd = "127.0.0.1:%d" % pf.port
    mw = env.mailward(listeners={
        "submission": {"accept_tls": "starttls", "hostname": NAME,
                       "client_identity": "xclient", "forward": fwd},
        "submissions": {"accept_tls": "implicit", "hostname": NAME,
                        "client_identity": "xclient", "forward": fwd}})
    return pf, sink, mw


def main():
    failures = []

    def expect(what, got, want):
        print("%s: %r" % (what, got))
        if not (got[0] == want[0] and got[1].startswith(want[1])):
            failures.append("%s: expected %r, got %r" % (what, want, got))

    if not shutil.which("swaks"):
        mwtest.skip("swaks is not installed")
    with mwtest.Env("postfix_submission") as env:
        pf, sink, mw = start(env)

        # 1. Before TLS: no AUTH offered, AUTH refused by mailward.
        s = smtplib.SMTP(*mw.addr("submission"), local_hostname="client.submission.test",
                         timeout=30, source_address=(CLIENT_ADDR, 0))
        code, caps = s.ehlo()
        print("EHLO before TLS: %d %r" % (code, caps))
        if s.has_extn("auth"):
            failures.append("AUTH offered before TLS: %r" % caps)
        if not s.has_extn("starttls"):
            failures.append("STARTTLS not offered: %r" % caps)
        expect("AUTH PLAIN before TLS", s.docmd("AUTH", "PLAIN " + plain(LOGIN, PASSWORD)),
               (530, b"5.7.0"))
        s.quit()

        # 2. STARTTLS, AUTH PLAIN, relay to the outside.
        s = connect(env, mw, "submission")
        print("EHLO after STARTTLS: %r" % (s.esmtp_features,))
        mechs = s.esmtp_features.get("auth", "").upper().split()
        if not {"PLAIN", "LOGIN"} <= set(mechs):
            failures.append("AUTH PLAIN LOGIN not offered after STARTTLS: %r"
                            % (s.esmtp_features,))
        expect("AUTH PLAIN after STARTTLS", s.docmd("AUTH", "PLAIN " + plain(LOGIN, PASSWORD)),
               (235, b"2.7.0"))
        try:
            refused = s.sendmail(LOGIN, [OUTSIDE], message("starttls plain"))
            print("sendmail after AUTH PLAIN: refused %r" % (refused,))
            if refused:
                failures.append("after AUTH PLAIN, refused: %r" % (refused,))
        except smtplib.SMTPException as e:
            failures.append("after AUTH PLAIN, the message was refused: %r" % (e,))
        s.quit()

        # 3. Wrong passwords: PLAIN and LOGIN, both on the STARTTLS listener.
        s = connect(env, mw, "submission")
        expect("AUTH PLAIN, wrong password", s.docmd("AUTH", "PLAIN " + plain(LOGIN, "wrong")),
               (535, b"5.7.8"))
        expect("AUTH LOGIN", s.docmd("AUTH", "LOGIN"), (334, b"VXNlcm5hbWU6"))
        expect("AUTH LOGIN user", s.docmd(base64.b64encode(LOGIN.encode()).decode()),
               (334, b"UGFzc3dvcmQ6"))
        expect("AUTH LOGIN, wrong password", s.docmd(base64.b64encode(b"nope").decode()),
               (535, b"5.7.8"))
        # 4. ... and without AUTH: a relay refusal, while a local recipient
        # is taken.
        expect("MAIL without AUTH", s.docmd("MAIL", "FROM:<%s>" % LOGIN), (250, b"2.1.0"))
        expect("RCPT outside without AUTH", s.docmd("RCPT", "TO:<%s>" % OUTSIDE),
               (554, b"5.7.1"))
        expect("RCPT local without AUTH", s.docmd("RCPT", "TO:<%s>" % LOCAL), (250, b"2.1.5"))
        s.rset()
        s.quit()

        # 5. Implicit TLS: smtplib's AUTH LOGIN, relay to the outside.
        s = connect(env, mw, "submissions")
        if s.has_extn("starttls"):
            failures.append("STARTTLS offered inside implicit TLS: %r" % (s.esmtp_features,))
        s.user, s.password = LOGIN, PASSWORD
        try:
            r = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        except smtplib.SMTPException as e:
            r = (getattr(e, "smtp_code", 0), str(e).encode())
        expect("AUTH LOGIN on the implicit listener", r, (235, b"2.7.0"))
        try:
            refused = s.sendmail(LOGIN, [OUTSIDE], message("implicit login"))
            if refused:
                failures.append("after AUTH LOGIN, refused: %r" % (refused,))
        except smtplib.SMTPException as e:
            failures.append("after AUTH LOGIN, the message was refused: %r" % (e,))
        s.quit()

        # 6. swaks, implicit TLS, AUTH LOGIN (certificate verified).
        argv = ["swaks", "--server", mw.addr("submissions")[0],
                "--port", str(mw.port("submissions")), "--tlsc", "--tls-verify",
                "--tls-ca-path", os.path.join(env.certs, "ca.pem"),
                "--local-interface", CLIENT_ADDR, "--ehlo", "client.swaks.test",
                "--auth", "LOGIN", "--auth-user", LOGIN, "--auth-password", PASSWORD,
                "--from", LOGIN, "--to", OUTSIDE, "--header", "Subject: swaks login",
                "--header", "Message-ID: <swaks-login@mwtest>", "--timeout", "20"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        print("$ %s\n-> exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
        if r.returncode != 0 or not re.search(r"^<~ +235 ", r.stdout, re.M):
            failures.append("swaks AUTH LOGIN over implicit TLS: exit %d" % r.returncode)

        # 7. Postfix's log: three messages relayed to the sink, each from
        # [127.0.0.2] with its SASL login; the failures against [127.0.0.2].
        ids = ["starttls-plain", "implicit-login", "swaks-login"]
        for mid in ids:
            if not pf.wait_maillog("message-id=<%s@mwtest>" % mid, 15):
                failures.append("message %s not queued by Postfix" % mid)
        sent = "relay=127.0.0.1[127.0.0.1]:%d" % sink.port
        mwtest.wait_for(lambda: pf.maillog().count(sent) >= 3, 20)
        log = pf.maillog()
        print(log)
        auth = re.findall(r": client=(\S+), sasl_method=(\S+), sasl_username=(\S+)", log)
        print("authenticated sessions in the maillog: %r" % (auth,))
        want = [("unknown[%s]" % CLIENT_ADDR, m, LOGIN) for m in ("PLAIN", "LOGIN", "LOGIN")]
        if sorted(auth) != sorted(want):
            failures.append("maillog client/sasl records: %r, expected %r" % (auth, want))
        relayed = re.findall(r"to=<%s>, relay=\S+.*status=sent" % re.escape(OUTSIDE), log)
        if len(relayed) != 3 or not all(sent in line for line in relayed):
            failures.append("messages relayed to the sink (%s): %r" % (sent, relayed))
        if re.search(r": client=\S+\[127\.0\.0\.1\]", log):
            failures.append("a message was queued for 127.0.0.1 or without AUTH")
        bad = re.findall(r"warning: (\S+): SASL (\S+) authentication failed", log)
        print("SASL failures in the maillog: %r" % (bad,))
        if sorted(bad) != sorted([("unknown[%s]" % CLIENT_ADDR, "PLAIN"),
                                  ("unknown[%s]" % CLIENT_ADDR, "LOGIN")]):
            failures.append("maillog SASL failures: %r" % (bad,))
        refusal = [l for l in log.splitlines() if "Relay access denied" in l]
        if len(refusal) != 1 or "from unknown[%s]" % CLIENT_ADDR not in refusal[0]:
            failures.append("maillog relay refusal: %r" % (refusal,))
        # Every AUTH Postfix saw came from [127.0.0.2] and is one of the five
        # above (three right, two wrong): the one sent before TLS never
        # reached it.
        tries = {}
        for peer, stats in re.findall(r"disconnect from (\S+) (.*)", log):
            m = re.search(r"\bauth=(\d+)(?:/(\d+))?", stats)
            if m:
                tries[peer] = tries.get(peer, 0) + int(m.group(2) or m.group(1))
        print("AUTH commands Postfix saw, by client: %r" % (tries,))
        if tries != {"unknown[%s]" % CLIENT_ADDR: 5}:
            failures.append("AUTH commands at Postfix: %r, expected 5 from [%s]"
                            % (tries, CLIENT_ADDR))
        # The password never shows in mailward's log.
        if PASSWORD in mw.log() or plain(LOGIN, PASSWORD) in mw.log():
            failures.append("the password is in mailward's log")
        mw.stop()
        # Inside the environment: a failure keeps its directory.
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d submission checks failed" % len(failures))
    print("ok")


if __name__ == "__main__":
    main()
