#!/usr/bin/python3
"""openssl s_client (real software) against the STARTTLS listener (invariant
7: TLS 1.2 and 1.3 only, forward-secret AEAD suites only):

- default: TLSv1.3, the certificate verifies against the test CA;
- -tls1_2: an ECDHE suite with GCM or CHACHA20-POLY1305;
- -tls1_1 (client at SECLEVEL 0 so that it can offer it): handshake fails;
- -tls1_2 with only a non-AEAD or non-forward-secret suite (AES128-SHA
  against the RSA certificate, ECDHE-*-AES128-SHA CBC suites): fails.
The same for the implicit listener's default handshake."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"


def sclient(env, port, *opts, starttls=True):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-brief",
            "-CAfile", os.path.join(env.certs, "ca.pem"), "-verify_return_error",
            "-verify_hostname", "localhost", "-servername", "localhost"]
    if starttls:
        argv += ["-starttls", "smtp"]
    argv += list(opts)
    r = subprocess.run(argv, input=b"QUIT\r\n", capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    print("$ %s\n-> exit %d\n%s" % (" ".join(argv), r.returncode, out))
    return r.returncode, out


def field(out, name):
    m = re.search(r"^%s:\s*(.+)$" % re.escape(name), out, re.M)
    return m.group(1).strip() if m else None


def must_fail(what, rc, out):
    mwtest.check(rc != 0 and field(out, "Protocol version") is None,
                 "%s: the handshake succeeded" % what)
    mwtest.check("no protocols available" not in out and "no ciphers available" not in out,
                 "%s: the client itself refused to offer it; the test proves nothing" % what)


def main():
    if not shutil.which("openssl"):
        mwtest.skip("openssl is not installed")
    with mwtest.Env("openssl_sclient") as env:
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        mw = env.mailward(listeners={
            "ec": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd},
            "rsa": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd,
                    "cert": os.path.join(env.certs, "server-rsa.pem"),
                    "key": os.path.join(env.certs, "server-rsa.key")},
            "smtps": {"accept_tls": "implicit", "hostname": NAME, "forward": fwd}})

        for lst, starttls in (("ec", True), ("rsa", True), ("smtps", False)):
            rc, out = sclient(env, mw.port(lst), starttls=starttls)
            mwtest.eq(rc, 0, "%s: default handshake exit status" % lst)
            mwtest.eq(field(out, "Protocol version"), "TLSv1.3", "%s: protocol" % lst)
            mwtest.eq(field(out, "Verification"), "OK", "%s: certificate verification" % lst)

        for lst in ("ec", "rsa"):
            rc, out = sclient(env, mw.port(lst), "-tls1_2")
            mwtest.eq(rc, 0, "%s: -tls1_2 exit status" % lst)
            mwtest.eq(field(out, "Protocol version"), "TLSv1.2", "%s: -tls1_2 protocol" % lst)
            suite = field(out, "Ciphersuite") or ""
            mwtest.check(suite.startswith("ECDHE-") and ("GCM" in suite or "CHACHA20" in suite),
                         "%s: TLS 1.2 suite %r is not ECDHE with GCM/CHACHA20" % (lst, suite))

            rc, out = sclient(env, mw.port(lst), "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
            must_fail("%s: -tls1_1" % lst, rc, out)
            rc, out = sclient(env, mw.port(lst), "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
            must_fail("%s: -tls1" % lst, rc, out)

        weak = [("rsa", "AES128-SHA"), ("rsa", "AES128-GCM-SHA256"), ("rsa", "ECDHE-RSA-AES128-SHA"),
                ("ec", "ECDHE-ECDSA-AES128-SHA"), ("ec", "ECDHE-ECDSA-AES256-SHA384")]
        for lst, suite in weak:
            rc, out = sclient(env, mw.port(lst), "-tls1_2", "-cipher", suite + ":@SECLEVEL=0")
            must_fail("%s: -tls1_2 -cipher %s" % (lst, suite), rc, out)

        mwtest.eq(be.messages, [], "messages at the backend")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
