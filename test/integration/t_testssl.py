#!/usr/bin/python3
"""testssl.sh (real software) against the STARTTLS listener (-t smtp) and the
implicit one, both at once (testssl takes minutes).  The implicit listener
serves two certificates, ECDSA and RSA (testssl's many client hellos then
meet both), and testssl must count two there, one on the other.  From its
JSON report:
SSLv2, SSLv3, TLS 1.0 and 1.1 are not offered, TLS 1.2 and 1.3 are, every
suite in the server's cipher order is forward-secret AEAD, and no finding
about protocols, ciphers or vulnerabilities has severity MEDIUM, HIGH or
CRITICAL.  Findings about the certificate (a private test CA, no OCSP, no
CAA) are printed but not judged.  testssl only connects to 127.0.0.1
(--ip 127.0.0.1, --nodns none).

testssl 3.0.8 checks client-initiated renegotiation with `echo R | openssl
s_client`: s_client asks to renegotiate and, at the end of its input, quits
with status 0 unless the server's refusal came first, so on a loaded machine
a server that refuses can be reported "VULNERABLE" (seen once in a CI-like
run).  Such a finding is checked again with s_client's input held open
(renegotiation_refused()): it counts only if the server does not refuse."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"
BAD = ("MEDIUM", "HIGH", "CRITICAL")
# Findings that are about the certificate or DNS, not protocols, ciphers or
# vulnerabilities.
NOT_JUDGED = ("cert", "intermediate_cert", "DNS_CAArecord", "OCSP", "CAA", "scanTime",
              "service", "pre_", "engine_problem", "optimal_proto", "chain_of_trust")
# testssl's default run without client simulation (-c: some 40 simulated
# browsers and libraries, 40 % of the time, nothing judged here) and HTTP
# headers (-h): protocols, cipher categories, forward secrecy (with the DH
# groups), server defaults (with the certificates), server preferences (with
# the cipher order per protocol) and vulnerabilities.
SECTIONS = ["-p", "-s", "-f", "-S", "-P", "-U"]
# What a TLS 1.2 suite offered here must be: ephemeral key exchange and an
# AEAD cipher (OpenSSL's names, as testssl prints them).
FS_AEAD_12 = re.compile(r"^(ECDHE|DHE)-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|"
                        r"CHACHA20-POLY1305|AES(128|256)-CCM8?)$")
TLS13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
         "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256")


def testssl(env, port, starttls, tag):
    jf = env.path("testssl-%s.json" % tag)
    log = env.path("testssl-%s.log" % tag)
    argv = ["testssl", "--quiet", "--warnings", "off", "--color", "0", "--nodns", "none",
            "--ip", "127.0.0.1", "--add-ca", os.path.join(env.certs, "ca.pem"),
            "--jsonfile", jf] + SECTIONS
    if starttls:
        argv += ["-t", "smtp"]
    argv.append("127.0.0.1:%d" % port)
    print("$ " + " ".join(argv), flush=True)
    return argv, jf, log, env.spawn(argv, log=log)


def renegotiation_refused(port, starttls):
    """Ask for a TLS 1.2 renegotiation with openssl s_client, keeping its
    input open so that only the server can end the session: True (and the
    output) when it did so within 10 s of the request (an alert, or closing
    the connection); a server that renegotiates leaves s_client running."""
    argv = ["openssl", "s_client", "-tls1_2", "-connect", "127.0.0.1:%d" % port]
    if starttls:
        argv += ["-starttls", "smtp"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    p.stdin.write(b"R\n")
    p.stdin.flush()
    try:
        p.wait(10)
        ended = True
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        ended = False
    out = p.stdout.read().decode(errors="replace")
    p.stdin.close()
    p.stdout.close()
    return ended and "RENEGOTIATING" in out, out


def judge(tag, jf, failures, port, starttls, ncerts):
    with open(jf) as f:
        findings = json.load(f)
    if isinstance(findings, dict):      # --jsonfile-pretty style
        findings = findings.get("scanResult", findings)
    byid = {}
    for fd in findings:
        byid.setdefault(fd.get("id"), []).append(fd)
        sev = str(fd.get("severity", "")).upper()
        fid = str(fd.get("id", ""))
        if sev in BAD:
            judged = not fid.startswith(NOT_JUDGED)
            print("%s: %s %s: %s%s" % (tag, sev, fid, fd.get("finding"),
                                       "" if judged else "  (not judged: certificate/DNS)"))
            if judged and fid == "secure_client_renego":
                refused, out = renegotiation_refused(port, starttls)
                print("%s: renegotiation asked again, input held open: %s\n%s" % (
                    tag, "refused" if refused else "NOT refused", out[-600:]))
                judged = not refused
            if judged:
                failures.append("%s: %s finding %s: %s" % (tag, sev, fid, fd.get("finding")))
    for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        got = " ".join(str(f.get("finding")) for f in byid.get(proto, []))
        print("%s: %s -> %s" % (tag, proto, got))
        if "not offered" not in got:
            failures.append("%s: %s is not reported as not offered: %r" % (tag, proto, got))
    # The sections the verdict relies on must have run at all.
    for fid in ("cipherlist_NULL", "cipherlist_EXPORT", "cipherlist_LOW", "PFS", "heartbleed",
                "ROBOT", "LOGJAM", "SWEET32", "POODLE_SSL", "secure_client_renego"):
        if fid not in byid:
            failures.append("%s: testssl reported nothing for %s" % (tag, fid))
    got = " ".join(str(f.get("finding")) for f in byid.get("cert_numbers", []))
    print("%s: cert_numbers -> %s" % (tag, got))
    if got != str(ncerts):
        failures.append("%s: testssl counts %r certificates, not %d" % (tag, got, ncerts))
    groups = " ".join(str(f.get("finding")) for f in byid.get("DH_groups", []))
    print("%s: DH_groups -> %s" % (tag, groups))
    for g in groups.split():
        if g.startswith("ffdhe") and g[5:].isdigit() and int(g[5:]) < 2048:
            failures.append("%s: finite-field group %s below 2048 bits" % (tag, g))
    for proto in ("TLS1_2", "TLS1_3"):
        got = " ".join(str(f.get("finding")) for f in byid.get(proto, []))
        print("%s: %s -> %s" % (tag, proto, got))
        if not got.startswith("offered"):
            failures.append("%s: %s is not offered: %r" % (tag, proto, got))
    for fid, good in (("cipherorder_TLSv1_2", FS_AEAD_12.match),
                      ("cipherorder_TLSv1_3", lambda c: c in TLS13)):
        suites = " ".join(str(f.get("finding")) for f in byid.get(fid, [])).split()
        print("%s: %s -> %s" % (tag, fid, " ".join(suites)))
        if not suites:
            failures.append("%s: testssl reported no %s" % (tag, fid))
        for c in suites:
            if not good(c):
                failures.append("%s: %s offers %s, not forward-secret AEAD" % (tag, fid, c))


def main():
    if not shutil.which("testssl"):
        mwtest.skip("testssl (testssl.sh) is not installed")
    failures = []
    with mwtest.Env("testssl") as env:
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        mw = env.mailward(listeners={
            "smtp": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd,
                     "max_per_client": "200", "timeout_handshake": "20"},
            "smtps": {"accept_tls": "implicit", "hostname": NAME, "forward": fwd,
                      "max_per_client": "200", "timeout_handshake": "20",
                      "cert": "%s %s" % (os.path.join(env.certs, "server.pem"),
                                         os.path.join(env.certs, "server-rsa.pem")),
                      "key": "%s %s" % (os.path.join(env.certs, "server.key"),
                                        os.path.join(env.certs, "server-rsa.key"))}})
        runs = []
        for tag, listener, starttls in (("starttls", "smtp", True), ("implicit", "smtps", False)):
            port = mw.port(listener)
            runs.append((tag, port, starttls) + testssl(env, port, starttls, tag))
        t0 = time.monotonic()
        for tag, port, starttls, argv, jf, log, p in runs:
            try:
                rc = p.wait(max(1, 400 - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                mwtest.fail("%s: testssl still running after %.0f s" % (tag, time.monotonic() - t0))
            print("%s: testssl exit %d after %.0f s" % (tag, rc, time.monotonic() - t0))
            if not os.path.exists(jf) or os.path.getsize(jf) == 0:
                print(open(log, errors="replace").read())
                mwtest.fail("%s: testssl wrote no JSON report (exit %d)" % (tag, rc))
            judge(tag, jf, failures, port, starttls, 2 if tag == "implicit" else 1)
        mwtest.check(mw.alive(), "mailward died under testssl:\n%s" % mw.log()[-5000:])
        mwtest.eq(be.messages, [], "messages at the backend")
        mw.stop()
        for f in failures:
            print("FAIL: " + f)
        mwtest.check(not failures, "%d testssl findings" % len(failures))
    print("ok")


if __name__ == "__main__":
    main()
