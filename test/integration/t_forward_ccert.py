#!/usr/bin/python3
"""A smarthost that lets clients relay by their TLS certificate (Postfix's
permit_tls_clientcerts, real software), reached through mailward by a
plaintext-only client: forward_cert and forward_key give mailward a
certificate to show.

Postfix (its own instance) offers STARTTLS with the test server certificate,
asks clients for a certificate (smtpd_tls_ask_ccert), and relays only for
the SHA-256 fingerprints in relay_clientcerts, which holds that of the test
certificate wrongname.pem; mynetworks does not include 127.0.0.1. Two
mailward listeners (accept_tls = none, forward_tls = starttls, the
smarthost's certificate verified for "localhost" against the test CA):

  1. "cc" with forward_cert = wrongname.pem: a message to a domain the
     smarthost does not serve is accepted (relayed), and Postfix's log shows
     the client certificate it got (its fingerprint, client-signature).
  2. "plain" without: the same recipient gets Postfix's own 554 Relay
     access denied, through mailward.
  3. SIGHUP after forward_cert's files were replaced by another certificate
     (server.pem, whose fingerprint Postfix does not know): relay refused;
     mailward -t refuses a forward_key that does not match forward_cert.
  4. (As root.) A listener that also serves STARTTLS, whose forward_key
     only root can read: mailward says so at start (event=not_reloadable,
     for that key alone); SIGHUP cannot read that key as mailward's user
     (reload_tls_failed names it) but still renews the listener's own
     certificate (ECDSA, then RSA).
The certificate's expiry is logged at start (event=certificate use=client)
and the reload names it (event=reload_tls forward_cert=).
"""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: legacy@lan.test\r\nSubject: relayed by certificate\r\n\r\nbody\r\n"
RCPT = "someone@elsewhere.test"


def fingerprint(path):
    r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", path],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip().split("=", 1)[1]


def served_key(env, port):
    """The key type of the certificate a STARTTLS listener serves."""
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % port, "-CAfile", os.path.join(env.certs, "ca.pem")],
                       input=b"QUIT\r\n", capture_output=True, timeout=30)
    x = subprocess.run(["openssl", "x509", "-noout", "-text"], input=r.stdout,
                       capture_output=True, timeout=30)
    text = x.stdout.decode()
    return "ecdsa" if "id-ecPublicKey" in text else "rsa" if "rsaEncryption" in text else "?"


def relay(port):
    """Send MSG to RCPT through mailward's port: None if relayed, else the
    refusal (code, text)."""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="legacy.lan.test", timeout=20)
    try:
        s.sendmail("legacy@lan.test", [RCPT], MSG)
        return None
    except smtplib.SMTPRecipientsRefused as e:
        return e.recipients[RCPT]
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


def main():
    with mwtest.Env("forward_ccert") as env:
        c = env.certs
        d = env.path("client")
        os.makedirs(d)
        os.chmod(d, 0o755)
        ccert, ckey = os.path.join(d, "client.pem"), os.path.join(d, "client.key")
        for src, dst in (("wrongname.pem", ccert), ("wrongname.key", ckey)):
            shutil.copyfile(os.path.join(c, src), dst)
            os.chmod(dst, 0o644)   # mailward's user reads them again on SIGHUP
        known = fingerprint(ccert)
        certs = env.path("relay_clientcerts")
        with open(certs, "w") as f:
            f.write("%s client.lan.test\n" % known)
        # retry: a relayed message is taken and stays in the queue (the
        # instance's error transport would refuse the recipient itself).
        pf = env.postfix(identity=None, main={
            "mynetworks": "192.0.2.0/24",
            "default_transport": "retry:no outside delivery in mwtest",
            "relay_transport": "retry:no outside delivery in mwtest",
            "smtpd_reject_unlisted_recipient": "no"}, smtpd_options={
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": os.path.join(c, "server.pem"),
            "smtpd_tls_key_file": os.path.join(c, "server.key"),
            "smtpd_tls_CAfile": os.path.join(c, "ca.pem"),
            "smtpd_tls_ask_ccert": "yes",
            "smtpd_tls_fingerprint_digest": "sha256",
            "smtpd_tls_loglevel": "1",
            "relay_clientcerts": "texthash:" + certs,
            "smtpd_relay_restrictions": "permit_tls_clientcerts,reject_unauth_destination",
        })
        base = {"accept_tls": "none", "require_tls": "no", "forward_tls": "starttls",
                "forward": "localhost:%d" % pf.port, "forward_ca": os.path.join(c, "ca.pem")}
        # "both": STARTTLS for its clients with a certificate of its own, and
        # a forward_key only root can read (read at start, not on SIGHUP).
        bcert, bkey, bfkey = (os.path.join(d, n) for n in ("both.pem", "both.key", "fwd.key"))
        for src, dst, mode in (("server.pem", bcert, 0o644), ("server.key", bkey, 0o644),
                               ("wrongname.key", bfkey, 0o600)):
            shutil.copyfile(os.path.join(c, src), dst)
            os.chmod(dst, mode)
        mw = env.mailward(listeners={
            "cc": dict(base, forward_cert=ccert, forward_key=ckey),
            "plain": dict(base),
            "both": dict(base, accept_tls="starttls", cert=bcert, key=bkey,
                         forward_cert=ccert, forward_key=bfkey)})

        # A key only root can read is found at start, not at the next SIGHUP.
        if mwtest.is_root():
            warned = re.findall(r"event=not_reloadable listener=(\w+) key=(\w+) file=(\S+) ",
                                mw.log())
            mwtest.eq([w for w in warned if w[0] in ("cc", "both")],
                      [("both", "forward_key", bfkey)],
                      "event=not_reloadable lines at start (cc and both)")
        # Its expiry is watched like a served certificate's.
        lines = re.findall(r"event=certificate listener=cc use=client cert=(\S+) "
                           r"key_type=(\w+) ", mw.log())
        mwtest.eq(lines, [(ccert, "ecdsa")], "event=certificate lines for forward_cert")

        # 1. Relayed by certificate.
        got = relay(mw.port("cc"))
        print("with forward_cert: %r" % (got,))
        mwtest.eq(got, None, "relay with the client certificate")
        mwtest.check(pf.wait_maillog("client-signature"),
                     "Postfix logged no client certificate:\n%s" % pf.maillog()[-3000:])
        # 2. Refused without.
        got = relay(mw.port("plain"))
        print("without: %r" % (got,))
        mwtest.check(got is not None and got[0] == 554 and b"Relay access denied" in got[1],
                     "relay without a client certificate: %r" % (got,))
        # 3. Another certificate after SIGHUP: not the one Postfix knows.
        for src, dst in (("server.pem", ccert), ("server.key", ckey)):
            mwtest.put_file(os.path.join(c, src), dst)
        mwtest.check(fingerprint(ccert) != known, "the new certificate is the old one")
        n = mw.log().count("event=reload_tls listener=cc")
        os.kill(mw.pid, signal.SIGHUP)
        mwtest.check(mwtest.wait_for(
            lambda: mw.log().count("event=reload_tls listener=cc") > n, 10),
            "no reload_tls for cc:\n%s" % mw.log()[-2000:])
        mwtest.check("event=reload_tls listener=cc forward_cert=%s " % ccert in mw.log(),
                     "reload_tls does not name forward_cert:\n%s" % mw.log()[-2000:])
        got = relay(mw.port("cc"))
        print("after SIGHUP with an unknown certificate: %r" % (got,))
        mwtest.check(got is not None and got[0] == 554,
                     "relay with a certificate Postfix does not know: %r" % (got,))
        # 4. "both": its forward_key cannot be read after the privilege drop,
        # which must not keep its own certificate from renewal.
        if mwtest.is_root():
            before = served_key(env, mw.port("both"))
            for src, dst in (("server-rsa.pem", bcert), ("server-rsa.key", bkey)):
                mwtest.put_file(os.path.join(c, src), dst)
            n = mw.log().count("event=reload_tls_failed listener=both")
            os.kill(mw.pid, signal.SIGHUP)
            mwtest.check(mwtest.wait_for(
                lambda: mw.log().count("event=reload_tls_failed listener=both") > n, 10),
                "no reload_tls_failed for both:\n%s" % mw.log()[-2000:])
            line = [x for x in mw.log().splitlines()
                    if "event=reload_tls_failed listener=both" in x][-1]
            print("unreadable forward_key: %s" % line)
            mwtest.check(bfkey in line and "ermission denied" in line,
                         "the failure does not name the forward_key: %s" % line)
            after = served_key(env, mw.port("both"))
            mwtest.eq((before, after), ("ecdsa", "rsa"),
                      "the listener's own certificate before and after the SIGHUP")
        else:
            print("step 4 left out: not root, mailward does not drop privileges")
        path, _ = env.mailward_config({"cc": dict(
            base, forward_cert=os.path.join(c, "server.pem"),
            forward_key=os.path.join(c, "wrongname.key"))})
        r = mwtest.run_mailward(["-t", "-c", path])
        print("mailward -t, a key that does not match: %r" % r.stderr)
        mwtest.check(r.returncode != 0 and "does not match certificate" in r.stderr,
                     "mailward -t with a mismatched forward_key: %r" % (r.stderr,))
        mw.stop()
        pf.stop()
    print("ok")


if __name__ == "__main__":
    main()
