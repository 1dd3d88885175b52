#!/usr/bin/python3
"""Two certificates on a listener (cert = A B, key = KA KB: one ECDSA, one
RSA, either order, blanks or commas): each session gets the ECDSA one when
its ClientHello says the client can take it, else the RSA one
(lib/tlshello.h). Clients are openssl s_client and Python's ssl and smtplib;
what a client got is judged by the certificate it received (openssl x509:
its public key type and SHA-256 fingerprint against the PEM files), and it
must verify against the test CA. aiosmtpd is the backend. Loopback only.

One mailward, workers = 2, a metrics_file, listeners "smtp" (STARTTLS,
cert = ECDSA RSA), "smtps" (implicit TLS, cert = RSA,ECDSA) and "one"
(STARTTLS, the ECDSA certificate alone), the two-certificate ones on copies
in env.dir/dual/:

  1. Start-up: one event=certificate line per certificate (cert=, key_type=,
     not_after= as openssl reads it, days_left), and
     mailward_certificate_expiry_timestamp_seconds{listener=,key_type=,cert=}
     per certificate: two for "smtp" and "smtps", one for "one".
  2. Who gets what. ECDSA: s_client's default (TLS 1.3), TLS 1.3 with
     ecdsa_secp256r1_sha256 and only X25519, TLS 1.2 default, TLS 1.2 with
     only ECDHE-ECDSA-AES128-GCM-SHA256, Python's default and TLS 1.2
     ECDSA-suite contexts. RSA: TLS 1.3 with -sigalgs rsa_pss_rsae_sha256,
     TLS 1.3 offering only the P-384 ECDSA scheme (the certificate is
     P-256), TLS 1.2 with only ECDHE-RSA-AES128-GCM-SHA256, TLS 1.2 with
     ECDSA absent from its sigalgs, TLS 1.2 without P-256 in its
     supported_groups, TLS 1.2 whose only ECDSA suite is CBC, Python's TLS
     1.2 RSA-suite context. On "smtp" and "smtps" both; every session's
     event=tls line names the key the client saw (key_type=), and sessions
     on "one" have no key_type=.
  3. A message over STARTTLS from an RSA-only client and one from an
     ECDSA-capable client, and one over implicit TLS from an RSA-only
     client, all reach the backend byte for byte.
  4. ClientHellos that arrive in many small TCP segments (the first
     splitting the record header) still get the right certificate; sessions
     that end before their ClientHello is whole (closed at once, a partial
     record, STARTTLS then nothing, STARTTLS then plaintext: a
     starttls_injection alert) leave mailward serving.
  5. mailward -t: both orders and commas are OK, and so are two ECDSA
     certificates for different names, with or without an RSA one; an
     error for a different number of files in cert and key (at key's
     line), for seventeen files (at cert's and key's lines), for a second
     RSA certificate with no name the first lacks ("would never be
     served"), and for keys in the wrong order (the key does not match).
  6. SIGHUP after dual/rsa.pem was replaced by another RSA certificate
     (signed by the test CA, valid 10 days): every process reloads; an RSA
     session held open across it still delivers; RSA-only clients on both
     listeners, on every worker, get the new certificate and ECDSA clients
     the same ECDSA one; event=reload_tls names both files (cert=A,B); the
     supervisor logs both certificates again (the RSA one a warning, "renew
     it soon") and the RSA metric follows while the ECDSA one stays.
  7. After the stop, mailward_tls_sessions_total{version,key_type} counts
     the sessions that reached TLS as the event=tls lines do.
mailward stops cleanly (exit 0, no sanitizer report)."""

import datetime
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

NAME = "mw.test.example"
SENDER, RCPT = "a@client.test", "b@rcpt.test"


# -- clients ------------------------------------------------------------------------
def sclient(env, port, opts, starttls):
    """openssl s_client asking for and verifying localhost (mwtest.sclient_session())."""
    return mwtest.sclient_session(env, port, opts, starttls, "localhost", "localhost")


def py_ctx(env, kind):
    """Python ssl client contexts (verifying against the test CA):
    "default"; "rsa12": TLS 1.2, ECDHE-RSA AEAD suites only; "ecdsa12": TLS
    1.2, ECDHE-ECDSA AEAD suites only."""
    ctx = mwtest.ssl_client_context(env)
    if kind == "rsa12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
    elif kind == "ecdsa12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")
    return ctx


def _py_result(tls):
    return {"pem": ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)),
            "version": tls.version(), "cipher": tls.cipher()[0]}


def py_session(env, port, kind, starttls):
    """One handshake by Python's ssl with context `kind` (py_ctx()):
    smtplib's STARTTLS, or TLS on connect, then QUIT."""
    ctx = py_ctx(env, kind)
    if starttls:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=20)
        try:
            s.starttls(context=ctx)
            got = _py_result(s.sock)
            s.quit()
        finally:
            s.close()
        return got
    s = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="client.test", timeout=20,
                         context=ctx)
    try:
        got = _py_result(s.sock)
        s.quit()
    finally:
        s.close()
    return got


def chunked_session(env, port, kind):
    """Python's ssl (context `kind`) over TLS on connect, its ClientHello
    sent in small TCP segments (3 bytes, then 40 at a time, 10 ms apart);
    the 220 greeting read over TLS."""
    ctx = py_ctx(env, kind)
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    first = True
    try:
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            data = out.read()
            if first and data:
                first = False
                pieces = [data[:3]] + [data[i:i + 40] for i in range(3, len(data), 40)]
                print("ClientHello (%s) of %d bytes in %d segments"
                      % (kind, len(data), len(pieces)))
                for p in pieces:
                    sock.sendall(p)
                    time.sleep(0.01)
            elif data:
                sock.sendall(data)
            if done:
                break
            b = sock.recv(65536)
            mwtest.check(b, "mailward closed the connection during a chunked handshake")
            inc.write(b)
        greeting = b""
        while b"\r\n" not in greeting:
            try:
                greeting += tls.read(4096)
            except ssl.SSLWantReadError:
                b = sock.recv(65536)
                mwtest.check(b, "mailward closed the connection before its greeting")
                inc.write(b)
        mwtest.check(greeting.startswith(b"220 "), "greeting after a chunked ClientHello: %r"
                     % greeting)
        return _py_result(tls)
    finally:
        sock.close()


# -- mailward's log and metrics ------------------------------------------------------
def metric_certs(path):
    """{(listener, key_type): value} of the certificate expiry metric (its
    cert= label must name a file of that listener's, whose key type it says)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    out = {}
    for labels, value in re.findall(
            r"^mailward_certificate_expiry_timestamp_seconds\{(.*)\} (\d+)$", text, re.M):
        m = re.fullmatch(r'listener="([^"]*)",use="server",key_type="([^"]*)",cert="([^"]*)"',
                         labels)
        mwtest.check(m, "certificate metric labels not understood: {%s}" % labels)
        mwtest.check(m.groups()[:2] not in out, "certificate metric twice: {%s}" % labels)
        mwtest.eq(mwtest.cert_file_info(m.group(3))[1], m.group(2), "key type of %s (metric)" % m.group(3))
        out[m.groups()[:2]] = int(value)
    return out


class Checker:
    """Runs clients one at a time and checks each against what it should
    get: the certificate (fingerprint and key type, from the files), and
    the event=tls line mailward logged for that session."""

    def __init__(self, env, mw, files):
        self.env, self.mw = env, mw
        self.files = dict(files)        # listener -> {"ecdsa": path, "rsa": path}
        self.seen = 0
        self.rows = []

    def expect(self, listener, want, what, client):
        """Run client() (-> {"pem", "version", "cipher"}); want: "ecdsa" or
        "rsa" (of a two-certificate listener), "only" (its one certificate)."""
        n = len(mwtest.tls_sessions(self.mw))
        got = client()
        fp, kind, _ = mwtest.cert_info(got["pem"])
        label = "%s on %s (%s %s)" % (what, listener, got["version"], got["cipher"])
        self.rows.append("%-6s %-5s %s" % (listener, kind, label))
        print("%s: %s certificate %s..." % (label, kind, fp[:16]), flush=True)
        want_fp, want_kind, _ = mwtest.cert_file_info(self.files[listener][want])
        mwtest.eq((kind, fp), (want_kind, want_fp), "%s: certificate received (key type, "
                  "SHA-256)" % label)
        ok = mwtest.wait_for(lambda: len(mwtest.tls_sessions(self.mw)) >= n + 1, 5)
        mwtest.check(ok, "%s: no event=tls line for the session" % label)
        line = mwtest.tls_sessions(self.mw)[n]
        mwtest.eq((line["listener"], line.get("key_type"), line["version"], line["cipher"]),
                  (listener, None if want == "only" else want, got["version"], got["cipher"]),
                  "%s: its event=tls line (listener, key_type, version, cipher)" % label)
        return got


def deliver(s, backend, subject, what):
    """One message on smtplib session s (after TLS); it must reach the backend
    byte for byte."""
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n"
           % (SENDER, RCPT, subject, subject)).encode()
    first = len(backend.messages)
    refused = s.sendmail(SENDER, [RCPT], msg)
    mwtest.eq(refused, {}, "recipients refused (%s)" % what)
    msgs = backend.wait_messages(first + 1, 10)
    mwtest.eq(len(msgs), first + 1, "messages at the backend (%s)" % what)
    mwtest.eq((msgs[-1].mail_from, msgs[-1].rcpt_tos, msgs[-1].data), (SENDER, [RCPT], msg),
              "message at the backend (%s)" % what)


def _hold(s):
    """A client for Checker.expect() that keeps its smtplib session open."""
    got = _py_result(s.sock)
    got["smtp"] = s
    return got


def starttls_smtp(env, port, kind):
    s = smtplib.SMTP("localhost", port, local_hostname="client.test", timeout=20)
    s.starttls(context=py_ctx(env, kind))
    s.ehlo()
    return s


# -- the steps -------------------------------------------------------------------------
def check_config_errors(env, dual):
    """Step 5: mailward -t."""
    c = env.certs
    ec, eck = os.path.join(c, "server.pem"), os.path.join(c, "server.key")
    rsa, rsak = os.path.join(c, "server-rsa.pem"), os.path.join(c, "server-rsa.key")
    wn, wnk = os.path.join(c, "wrongname.pem"), os.path.join(c, "wrongname.key")
    rsa2, rsa2k = dual["new_rsa"]

    def conf(cert, key):
        path, _ = env.mailward_config(
            {"smtp": {"accept_tls": "starttls", "cert": cert, "key": key,
                      "forward": "127.0.0.1:9"}})
        with open(path) as f:
            lines = f.read().splitlines()
        at = {k: 1 + next(i for i, l in enumerate(lines) if l.startswith(k + " = "))
              for k in ("cert", "key")}
        # The fifth of a key's lines: "cert+4".
        for k in ("cert", "key"):
            again = [1 + i for i, l in enumerate(lines) if l.startswith(k + " = ")]
            if len(again) > 4:
                at[k + "+4"] = again[4]
        at["[smtp]"] = 1 + lines.index("[smtp]")
        return path, at

    for cert, key in (("%s %s" % (ec, rsa), "%s %s" % (eck, rsak)),
                      ("%s,%s" % (rsa, ec), "%s, %s" % (rsak, eck)),
                      ("%s , %s" % (ec, rsa), "%s\t%s" % (eck, rsak)),
                      # Two ECDSA ones for different names (t_sni_cert serves such).
                      ("%s %s" % (ec, wn), "%s %s" % (eck, wnk)),
                      ("%s %s %s" % (ec, rsa, wn), "%s %s %s" % (eck, rsak, wnk))):
        path, _ = conf(cert, key)
        r = mwtest.run_mailward(["-t", "-c", path])
        mwtest.eq((r.returncode, r.stdout, r.stderr), (0, "%s: configuration OK\n" % path, ""),
                  "mailward -t with cert = %r" % cert)

    # (what, cert, key, {line key: words in its message})
    bad = [
        ("two certs, one key", "%s %s" % (ec, rsa), eck,
         {"key": ["cert names 2 files and key 1"]}),
        ("one cert, two keys", ec, "%s %s" % (eck, rsak),
         {"key": ["cert names 1 file and key 2"]}),
        ("seventeen files", [" ".join([ec] * 4)] * 4 + [ec], [" ".join([eck] * 4)] * 4 + [eck],
         {"cert+4": ["cert: more than 16 files in all, with this line's"],
          "key+4": ["key: more than 16 files in all, with this line's"]}),
        ("two RSA certificates for the same names", "%s %s" % (rsa, rsa2),
         "%s %s" % (rsak, rsa2k),
         {"[smtp]": ["certificate %s would never be served: %s, before it, has the same "
                     "key type and every name it has" % (rsa2, rsa)]}),
        ("keys in the other order", "%s %s" % (ec, rsa), "%s %s" % (rsak, eck),
         {"[smtp]": ["key %s does not match certificate %s" % (rsak, ec)]}),
    ]
    for what, cert, key, want in bad:
        path, at = conf(cert, key)
        r = mwtest.run_mailward(["-t", "-c", path])
        print("-t, %s: exit %d\nstdout %r\nstderr %r" % (what, r.returncode, r.stdout, r.stderr))
        mwtest.eq(r.returncode, 1, "mailward -t exit status, %s" % what)
        mwtest.check("configuration OK" not in r.stdout, "%s: configuration OK" % what)
        errs = [l for l in r.stderr.splitlines() if l.strip()]
        got = {}
        for e in errs:
            m = re.match(r"^(.+?):(\d+): (.+)$", e)
            mwtest.check(m and m.group(1) == path, "%s: not a %s:LINE: line: %r"
                         % (what, path, e))
            got.setdefault(int(m.group(2)), []).append(m.group(3))
        mwtest.eq(sorted(got), sorted(at[k] for k in want),
                  "%s: lines with an error (stderr %r)" % (what, r.stderr))
        for k, words in want.items():
            mwtest.eq(len(got[at[k]]), 1, "%s: errors at line %d" % (what, at[k]))
            for w in words:
                mwtest.check(w in got[at[k]][0], "%s: %r not in %r" % (what, w, got[at[k]][0]))


def main():
    if not shutil.which("openssl"):
        mwtest.skip("openssl is not installed")
    with mwtest.Env("dual_cert") as env:
        t0 = time.monotonic()
        c = env.certs
        d = env.path("dual")
        os.makedirs(d)
        os.chmod(d, 0o755)
        # Copies, which mailward's user (nobody, as root) can read on SIGHUP.
        for src, dst in (("server.pem", "ecdsa.pem"), ("server.key", "ecdsa.key"),
                         ("server-rsa.pem", "rsa.pem"), ("server-rsa.key", "rsa.key"),
                         ("server.pem", "one.pem"), ("server.key", "one.key")):
            mwtest.put_file(os.path.join(c, src), os.path.join(d, dst))
        one = os.path.join(d, "one.pem")
        ecdsa, rsa = os.path.join(d, "ecdsa.pem"), os.path.join(d, "rsa.pem")
        ecdsa_key, rsa_key = os.path.join(d, "ecdsa.key"), os.path.join(d, "rsa.key")
        new_rsa = mwtest.make_leaf_cert(env, "localhost", ["localhost", "mx.test", "127.0.0.1"],
                                         days=10, key="rsa")
        mwtest.eq([mwtest.cert_file_info(p)[1] for p in (ecdsa, rsa, new_rsa[0])], ["ecdsa", "rsa", "rsa"],
                  "key types of the test's certificates")
        mwtest.check(mwtest.cert_file_info(new_rsa[0])[0] != mwtest.cert_file_info(rsa)[0], "new RSA cert is the old")

        prom = mwtest.metrics_file(env)
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        mw = env.mailward(listeners={
            "smtp": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd,
                     "cert": "%s %s" % (ecdsa, rsa), "key": "%s %s" % (ecdsa_key, rsa_key)},
            "smtps": {"accept_tls": "implicit", "hostname": NAME, "forward": fwd,
                      "cert": "%s,%s" % (rsa, ecdsa), "key": "%s,%s" % (rsa_key, ecdsa_key)},
            "one": {"accept_tls": "starttls", "hostname": NAME, "forward": fwd,
                    "cert": one, "key": os.path.join(d, "one.key")}},
            globals={"workers": 2, "metrics_file": prom})
        ck = Checker(env, mw, {"smtp": {"ecdsa": ecdsa, "rsa": rsa},
                               "smtps": {"ecdsa": ecdsa, "rsa": rsa},
                               "one": {"only": one}})

        # 1. event=certificate lines and the metrics at start.
        want = {("smtp", ecdsa, "ecdsa"), ("smtp", rsa, "rsa"), ("smtps", rsa, "rsa"),
                ("smtps", ecdsa, "ecdsa"), ("one", one, "ecdsa")}
        lines = mwtest.log_events(mw, "certificate")
        print("event=certificate lines: %r" % lines)
        mwtest.eq(sorted((l["listener"], l["cert"], l["key_type"]) for l in lines), sorted(want),
                  "event=certificate lines at start (listener, cert, key_type)")
        for l in lines:
            na = mwtest.cert_file_info(l["cert"])[2]
            when = datetime.datetime.fromtimestamp(na, datetime.timezone.utc)
            mwtest.eq((l["_level"], l["not_after"], int(l["days_left"]) > 300),
                      ("info", when.strftime("%Y-%m-%dT%H:%M:%SZ"), True),
                      "event=certificate line for %s %s (level, not_after, days_left > 300)"
                      % (l["listener"], l["cert"]))
        want_metric = {(lst, kind): mwtest.cert_file_info(path)[2] for lst, path, kind in want}
        mwtest.check(mwtest.wait_for(lambda: metric_certs(prom) == want_metric, 5),
                     "certificate metrics at start: %r, want %r"
                     % (metric_certs(prom), want_metric))

        # 2. Who gets which certificate.
        ecdsa_cases = [
            ("s_client default", []),
            ("s_client TLS 1.3, P-256 ECDSA sigalg, X25519 only",
             ["-tls1_3", "-groups", "X25519",
              "-sigalgs", "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256"]),
            ("s_client TLS 1.2 default", ["-tls1_2"]),
            ("s_client TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 only",
             ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        ]
        rsa_cases = [
            ("s_client TLS 1.3 -sigalgs rsa_pss_rsae_sha256",
             ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"]),
            ("s_client TLS 1.3, P-384 ECDSA sigalg only",
             ["-tls1_3", "-sigalgs", "ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256"]),
            ("s_client TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 only",
             ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]),
            ("s_client TLS 1.2 without ECDSA sigalgs",
             ["-tls1_2", "-sigalgs", "rsa_pss_rsae_sha256:RSA+SHA256"]),
            ("s_client TLS 1.2 without P-256 in supported_groups",
             ["-tls1_2", "-curves", "X25519:P-384"]),
            ("s_client TLS 1.2 whose ECDSA suite is CBC",
             ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-GCM-SHA256"]),
        ]
        for lst, starttls in (("smtp", True), ("smtps", False)):
            port = mw.port(lst)
            for want_kind, cases in (("ecdsa", ecdsa_cases), ("rsa", rsa_cases)):
                for what, opts in cases:
                    ck.expect(lst, want_kind, what,
                              lambda: sclient(env, port, opts, starttls))
            for kind, want_kind in (("default", "ecdsa"), ("ecdsa12", "ecdsa"),
                                    ("rsa12", "rsa")):
                ck.expect(lst, want_kind, "Python ssl %s" % kind,
                          lambda: py_session(env, port, kind, starttls))
        for what, opts in (ecdsa_cases[0], ecdsa_cases[2]):
            ck.expect("one", "only", what, lambda: sclient(env, mw.port("one"), opts, True))
        ck.expect("one", "only", "Python ssl default",
                  lambda: py_session(env, mw.port("one"), "default", True))

        # 3. Messages through both kinds of client.
        for kind, subject in (("rsa12", "starttls rsa-only"), ("default", "starttls ecdsa")):
            s = ck.expect("smtp", "rsa" if kind == "rsa12" else "ecdsa",
                          "smtplib %s, delivering" % kind,
                          lambda: _hold(starttls_smtp(env, mw.port("smtp"), kind)))
            deliver(s["smtp"], be, subject, subject)
            s["smtp"].quit()
        s = smtplib.SMTP_SSL("localhost", mw.port("smtps"), local_hostname="client.test",
                             timeout=20, context=py_ctx(env, "rsa12"))
        mwtest.eq(mwtest.cert_file_info(rsa)[0],
                  mwtest.cert_info(ssl.DER_cert_to_PEM_cert(s.sock.getpeercert(True)))[0],
                  "certificate of the implicit RSA-only delivery")
        s.ehlo()
        deliver(s, be, "implicit rsa-only", "implicit TLS, RSA-only client")
        s.quit()

        # 4. ClientHellos in pieces, and sessions that end before theirs is whole.
        for kind, want_kind in (("rsa12", "rsa"), ("default", "ecdsa")):
            ck.expect("smtps", want_kind, "chunked ClientHello, Python ssl %s" % kind,
                      lambda: chunked_session(env, mw.port("smtps"), kind))
        n_tls = len(mwtest.tls_sessions(mw))
        n_close = len(mwtest.log_events(mw, "close"))
        with socket.create_connection(("127.0.0.1", mw.port("smtps")), timeout=10):
            pass
        with socket.create_connection(("127.0.0.1", mw.port("smtps")), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # 11 of 517 bytes
            time.sleep(0.1)
        for after in (b"", b"EHLO not.tls\r\n"):
            with socket.create_connection(("127.0.0.1", mw.port("smtp")), timeout=10) as raw:
                f = raw.makefile("rb")
                mwtest.check(f.readline().startswith(b"220"), "no greeting")
                raw.sendall(b"EHLO client.test\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                raw.sendall(b"STARTTLS\r\n")
                mwtest.check(f.readline().startswith(b"220"), "no 220 to STARTTLS")
                if after:
                    raw.sendall(after)
                    raw.settimeout(10)
                    try:
                        rest = raw.recv(4096)
                    except OSError as e:
                        rest = repr(e)
                    print("plaintext after STARTTLS, mailward answered %r" % (rest,))
        ok = mwtest.wait_for(lambda: len(mwtest.log_events(mw, "close")) >= n_close + 4, 10)
        mwtest.check(ok, "the four sessions without a ClientHello did not all end:\n%s"
                     % mw.log()[-3000:])
        mwtest.eq(len(mwtest.tls_sessions(mw)), n_tls, "event=tls lines for sessions without TLS")
        got = mwtest.wait_alerts(mw, 1, event="starttls_injection", listener="smtp")
        mwtest.eq([(a["action"], a["observed"]) for a in got],
                  [("closed", "plaintext where a TLS handshake was due")],
                  "alerts for plaintext after STARTTLS")
        mwtest.check(mw.alive(), "mailward died:\n%s" % mw.log()[-5000:])
        for lst in ("smtp", "smtps"):
            ck.expect(lst, "rsa", "after the aborted sessions, Python ssl rsa12",
                      lambda: py_session(env, mw.port(lst), "rsa12", lst == "smtp"))

        # 5. mailward -t.
        check_config_errors(env, {"new_rsa": new_rsa})

        # 6. A new RSA certificate, SIGHUP.
        held = starttls_smtp(env, mw.port("smtp"), "rsa12")
        mwtest.eq(mwtest.cert_info(ssl.DER_cert_to_PEM_cert(held.sock.getpeercert(True)))[0],
                  mwtest.cert_file_info(rsa)[0], "certificate of the held session")
        old_rsa_fp = mwtest.cert_file_info(rsa)[0]
        n_cert = len(mwtest.log_events(mw, "certificate"))
        mwtest.put_file(new_rsa[0], rsa)
        mwtest.put_file(new_rsa[1], rsa_key)

        def reloaded():
            got = {}
            for l in mwtest.log_events(mw, "reload_tls"):
                got[l["listener"]] = got.get(l["listener"], 0) + 1
            return got
        hup_ns = time.time_ns()
        os.kill(mw.pid, signal.SIGHUP)
        ok = mwtest.wait_for(lambda: all(reloaded().get(l, 0) >= 3
                                         for l in ("smtp", "smtps", "one")), 10)
        mwtest.check(ok, "not every process (supervisor and 2 workers) logged reload_tls for "
                     "every listener: %r\n%s" % (reloaded(), mw.log()[-4000:]))
        mwtest.eq(mwtest.log_events(mw, "reload_tls_failed"), [], "reload_tls_failed lines")
        mwtest.eq(sorted({(l["listener"], l["cert"]) for l in mwtest.log_events(mw, "reload_tls")}),
                  [("one", one), ("smtp", ecdsa + "," + rsa), ("smtps", rsa + "," + ecdsa)],
                  "reload_tls lines (listener, cert: the files, commas between)")
        deliver(held, be, "held across reload", "the RSA session held across the reload")
        held.quit()
        new_fp = mwtest.cert_file_info(rsa)[0]
        mwtest.check(new_fp != old_rsa_fp, "rsa.pem did not change")
        for lst, starttls in (("smtp", True), ("smtps", False)):
            port = mw.port(lst)
            for i in range(4):         # sessions spread over both workers
                ck.expect(lst, "rsa", "after SIGHUP #%d, Python ssl rsa12" % i,
                          lambda: py_session(env, port, "rsa12", starttls))
                ck.expect(lst, "ecdsa", "after SIGHUP #%d, Python ssl default" % i,
                          lambda: py_session(env, port, "default", starttls))
            ck.expect(lst, "rsa", "after SIGHUP, " + rsa_cases[0][0],
                      lambda: sclient(env, port, rsa_cases[0][1], starttls))
            ck.expect(lst, "ecdsa", "after SIGHUP, " + ecdsa_cases[0][0],
                      lambda: sclient(env, port, ecdsa_cases[0][1], starttls))
        pids = sorted(int(t["_pid"]) for t in mwtest.tls_sessions(mw)[-20:])
        print("sessions after the reload served by processes %r" % sorted(set(pids)))
        mwtest.eq(sorted(set(pids)), mwtest.children(mw.pid),
                  "processes that served the 20 sessions after SIGHUP (both workers)")
        s = starttls_smtp(env, mw.port("smtp"), "rsa12")
        mwtest.eq(mwtest.cert_info(ssl.DER_cert_to_PEM_cert(s.sock.getpeercert(True)))[0], new_fp,
                  "certificate of an RSA delivery after the reload")
        deliver(s, be, "after reload rsa-only", "an RSA session after the reload")
        s.quit()

        lines = mwtest.log_events(mw, "certificate")[n_cert:]
        print("event=certificate lines after SIGHUP: %r" % lines)
        mwtest.eq(sorted((l["listener"], l["cert"], l["key_type"]) for l in lines), sorted(want),
                  "event=certificate lines after SIGHUP (once, from the supervisor)")
        for l in lines:
            if l["key_type"] == "rsa":
                mwtest.eq((l["_level"], l["days_left"] in ("9", "10"), l.get("note")),
                          ("warning", True, "renew it soon"),
                          "line for the new RSA certificate of %s (level, days_left, note)"
                          % l["listener"])
            else:
                mwtest.eq((l["_level"], l.get("note")), ("info", None),
                          "line for the ECDSA certificate of %s after SIGHUP" % l["listener"])
        # The metrics file is rewritten every 10 s: wait for the first one
        # written after the SIGHUP, then it must have the new RSA expiry.
        ok = mwtest.wait_for(lambda: os.stat(prom).st_mtime_ns > hup_ns, 12)
        mwtest.check(ok, "metrics file not written again within 12 s of the SIGHUP")
        want_metric.update({("smtp", "rsa"): mwtest.cert_file_info(rsa)[2],
                            ("smtps", "rsa"): mwtest.cert_file_info(rsa)[2]})
        mwtest.eq(metric_certs(prom), want_metric, "certificate metrics after SIGHUP")

        mw.stop()
        # 7. At exit the metrics count every session that reached TLS, by
        # version and key type, as the event=tls lines do ("one": ECDSA).
        want = {}
        for t in mwtest.tls_sessions(mw):
            k = (t["version"], t.get("key_type") or "ecdsa")
            want[k] = want.get(k, 0) + 1
        with open(prom) as f:
            got = {(v, k): int(n) for v, k, n in re.findall(
                r'^mailward_tls_sessions_total\{version="([^"]+)",key_type="([^"]+)"\} '
                r'(\d+)$', f.read(), re.M)}
        print("TLS sessions by version and key type: %r" % got)
        mwtest.eq(len(got), 6, "mailward_tls_sessions_total lines")
        mwtest.eq({k: v for k, v in got.items() if v}, want,
                  "mailward_tls_sessions_total at exit against the event=tls lines")
        mwtest.check(got[("TLSv1.2", "rsa")] > 0 and got[("TLSv1.3", "ecdsa")] > 0,
                     "sessions of both kinds counted: %r" % got)
        print("\n".join(ck.rows))
        print("%d TLS sessions checked in %.1f s" % (len(ck.rows), time.monotonic() - t0))
    print("ok")


if __name__ == "__main__":
    main()
