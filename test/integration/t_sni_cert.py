#!/usr/bin/python3
"""Several certificates on a listener, chosen per session by the name the
client asks for (SNI) among those its ClientHello can take (lib/tls.c
tls_pick_cert()): the name's own certificate before a wildcard covering it
before the rest, then ECDSA before RSA, then the configuration's order.
Clients are openssl s_client (-servername, -noservername), Python's ssl and
smtplib (server_hostname, check_hostname against the test CA) and swaks
(--tls-sni); what a client got is judged by the certificate it received
(SHA-256 fingerprint, openssl x509, against the PEM files). aiosmtpd is the
backend. Loopback only.

Certificates, signed by the test CA, in this order: a-ec (ECDSA: a.test,
www.a.test), a-rsa (RSA: a.test), b-wild (ECDSA: *.b.test), c-rsa (RSA:
c.test, WWW.C.Test and four more), xb-ec (ECDSA: x.b.test and an IP SAN
127.0.0.1), e-cn (ECDSA, CN e.test and only an IP SAN). One mailward,
workers = 2, a metrics_file; listeners "smtp" (STARTTLS, cert and key one
file a line) and "smtps" (implicit TLS, two files a line, commas or blanks).

  1. Start-up: one event=certificate line per certificate and listener with
     its key_type= and names= (dNSNames in order and lower case, at most 4
     then ",+N"; IP SANs left out; the CN when there is no dNSName), and one
     mailward_certificate_expiry_timestamp_seconds{cert=} per certificate
     and listener, its value the notAfter openssl reads.
  2. Who gets what, on both listeners. ECDSA-capable clients: no name ->
     a-ec; a.test, www.a.test, "A.TEST." -> a-ec; mx.b.test -> b-wild;
     x.b.test -> xb-ec (its own name before the earlier wildcard); b.test,
     a.mx.b.test (the wildcard covers neither), 127.0.0.1 (no host name,
     sni=-; xb-ec's IP SAN is no name either) and a name with a blank (no
     host name: sni=-) -> a-ec;
     c.test, www.c.test -> c-rsa (the name before the key type); e.test ->
     e-cn. RSA-only clients (TLS 1.2 ECDHE-RSA suite only, TLS 1.3 with
     -sigalgs rsa_pss_rsae_sha256, Python TLS 1.2): a.test, no name,
     mx.b.test, x.b.test -> a-rsa (the first RSA one, as no RSA one names
     them); c.test -> c-rsa. s_client verifies the chain and the served
     certificate's own name; Python verifies the name it asked for. Every
     session's event=tls line says key_type=, sni= (lower case, no trailing
     dot, - for none) and cert= (the file served).
  3. Each Python session of step 2 delivers a message (every certificate
     but e-cn's, on both listeners), and swaks --tls-sni one on each
     listener (b-wild over STARTTLS, c-rsa over implicit TLS): all reach the
     backend byte for byte (swaks' part is skipped without swaks).
  4. mailward -t: the running configuration is OK; an ECDSA certificate
     whose names an earlier ECDSA one has all of is an error ("would never be
     served"), also when its wildcard is written "*.B.test." and the earlier
     one's "*.b.test" (and the other way round: both name the same), and
     when two earlier ones have its names between them (a.test, x.b.test
     after a-ec and xb-ec), or when it names no host and is not the first
     (an ECDSA one after a-ec, or after a-rsa first: every client takes the
     first host's RSA one); a-ec after the ECDSA one for www.a.test alone
     is OK.
  5. SIGHUP after mw.conf was rewritten with a new ECDSA certificate d-ec
     (d.test) last on both listeners: before, d.test got a-ec; every
     process logs reload_tls (cert= names all seven files) and reload_config
     applies cert and key with no restart needed; after, d.test gets d-ec on
     both listeners and both workers, RSA-only d.test a-rsa, no name still
     a-ec; the supervisor logs the seven certificates again.
  6. TLS 1.2 resumption (s_client -sess_out/-sess_in), on a second
     mailward with one process (each worker seals tickets with keys of its
     own) serving a-ec, a-rsa and c-rsa: by session ticket, for the same
     name, the session is reused; asked for another name (c.test after
     a.test, a.test after c.test), it is not, and the client gets that
     name's certificate. Without tickets there is nothing to resume by: the
     ServerHello has no session ID (mailward keeps no session cache: one
     shared by the certificates would resume a session made for another
     name).
  7. After the stop, the metrics have the seven series per listener.
mailward stops cleanly (exit 0, no sanitizer report)."""

import os
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SENDER, RCPT = "a@client.test", "b@rcpt.test"
# label: (CN, subjectAltNames, key type), in the listeners' order.
CERTS = {
    "a-ec": ("a.test", ["a.test", "www.a.test"], "ec"),
    "a-rsa": ("a.test", ["a.test"], "rsa"),
    "b-wild": ("*.b.test", ["*.b.test"], "ec"),
    "c-rsa": ("c.test", ["c.test", "WWW.C.Test", "mail.c.test", "mx.c.test", "smtp.c.test",
                         "submit.c.test"], "rsa"),
    "xb-ec": ("x.b.test", ["x.b.test", "127.0.0.1"], "ec"),
    "e-cn": ("e.test", ["127.0.0.2"], "ec"),
}
NAMES = {"a-ec": "a.test,www.a.test", "a-rsa": "a.test", "b-wild": "*.b.test",
         "c-rsa": "c.test,www.c.test,mail.c.test,mx.c.test,+2", "xb-ec": "x.b.test",
         "e-cn": "e.test", "d-ec": "d.test"}
# What s_client checks the served certificate against: one of its own names.
OWN = {"a-ec": "a.test", "a-rsa": "a.test", "b-wild": "mx.b.test", "c-rsa": "c.test",
       "xb-ec": "x.b.test", "e-cn": "127.0.0.2", "d-ec": "d.test"}
RSA12 = ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]
RSA13 = ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"]
# (client, name asked for, certificate it must get, sni= logged); "sc":
# s_client, "py": Python's ssl (delivers a message), with "-rsa": RSA-only.
CASES = [
    ("sc", None, "a-ec", "-"),
    ("py", "a.test", "a-ec", "a.test"),
    ("py", "www.a.test", "a-ec", "www.a.test"),
    ("sc", "A.TEST.", "a-ec", "a.test"),
    ("py", "mx.b.test", "b-wild", "mx.b.test"),
    ("py", "x.b.test", "xb-ec", "x.b.test"),
    ("sc", "b.test", "a-ec", "b.test"),
    ("sc", "a.mx.b.test", "a-ec", "a.mx.b.test"),
    ("sc", "127.0.0.1", "a-ec", "-"),
    ("sc", "mx b.test", "a-ec", "-"),
    ("py", "c.test", "c-rsa", "c.test"),
    ("py", "www.c.test", "c-rsa", "www.c.test"),
    ("sc", "e.test", "e-cn", "e.test"),
    ("sc-rsa12", "a.test", "a-rsa", "a.test"),
    ("sc-rsa13", "a.test", "a-rsa", "a.test"),
    ("py-rsa", "a.test", "a-rsa", "a.test"),
    ("sc-rsa12", None, "a-rsa", "-"),
    ("sc-rsa13", "mx.b.test", "a-rsa", "mx.b.test"),
    ("sc-rsa12", "x.b.test", "a-rsa", "x.b.test"),
    ("py-rsa", "c.test", "c-rsa", "c.test"),
]

# -- clients: each returns {"pem", "version", "smtp" (open session or None)} --------------
def sclient(env, port, starttls, sni, verify, opts=()):
    """openssl s_client asking for sni (mwtest.sclient_session())."""
    return dict(mwtest.sclient_session(env, port, opts, starttls, sni, verify), smtp=None)


class Named:
    """What smtplib takes as an SSL context, asking for `name` (SNI and the
    name checked) whatever address it connects to: the names resolve nowhere."""

    def __init__(self, ctx, name):
        self.ctx, self.name = ctx, name

    def wrap_socket(self, sock, server_hostname=None, **kw):
        return self.ctx.wrap_socket(sock, server_hostname=self.name, **kw)


def py_smtp(env, port, starttls, name, rsa_only=False):
    """smtplib over Python's ssl (check_hostname against the test CA) asking
    for name; the session is left open after EHLO."""
    ctx = mwtest.ssl_client_context(env)
    if rsa_only:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
    if starttls:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=20)
        s.starttls(context=Named(ctx, name))
    else:
        s = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="client.test", timeout=20,
                             context=Named(ctx, name))
    s.ehlo()
    return {"pem": ssl.DER_cert_to_PEM_cert(s.sock.getpeercert(True)),
            "version": s.sock.version(), "smtp": s}


def swaks(env, port, starttls, sni, subject):
    """swaks --tls-sni, verifying the chain; the certificate it got."""
    peer = env.path("swaks-peer.pem")
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--from", SENDER,
            "--to", RCPT, "--ehlo", "client.swaks.test", "--header", "Subject: " + subject,
            "--body", "body of " + subject, "--timeout", "20", "--tls" if starttls else "--tlsc",
            "--tls-sni", sni, "--tls-verify", "--tls-ca-path",
            os.path.join(env.certs, "ca.pem"), "--tls-get-peer-cert", peer]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    mwtest.check(r.returncode == 0, "$ %r\n-> exit %d\n%s%s" % (argv, r.returncode, r.stdout,
                                                                 r.stderr))
    m = re.search(r"TLS started with cipher (TLSv1\.[23]):", r.stdout)
    mwtest.check(m, "swaks did not say TLS started:\n%s" % r.stdout)
    with open(peer) as f:
        return {"pem": f.read(), "version": m.group(1), "smtp": None}


# -- mailward's log and metrics -------------------------------------------------------------
def metric_certs(path):
    """{(listener, cert file, key_type): value} of the expiry metric."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    return {(m[0], m[2], m[1]): int(m[3]) for m in re.findall(
        r'^mailward_certificate_expiry_timestamp_seconds\{listener="([^"]*)",use="server",'
        r'key_type="([^"]*)",cert="([^"]*)"\} (\d+)$', text, re.M)}


class Checker:
    """Runs one client at a time: the certificate it got must be the one of
    the label expected, and mailward's event=tls line must say so."""

    def __init__(self, mw, files, backend):
        self.mw, self.files, self.be = mw, files, backend
        self.n = 0

    def expect(self, listener, want, sni_logged, what, client):
        n = len(mwtest.tls_sessions(self.mw))
        got = client()
        fp, kind, _ = mwtest.cert_info(got["pem"])
        want_fp, want_kind, _ = mwtest.cert_file_info(self.files[want])
        label = "%s on %s (%s)" % (what, listener, got["version"])
        print("%s: %s certificate %s..." % (label, kind, fp[:16]), flush=True)
        mwtest.eq(fp, want_fp, "%s: certificate received (SHA-256), %s expected" % (label, want))
        ok = mwtest.wait_for(lambda: len(mwtest.tls_sessions(self.mw)) > n, 5)
        mwtest.check(ok, "%s: no event=tls line" % label)
        t = mwtest.tls_sessions(self.mw)[n]
        mwtest.eq((t["listener"], t["version"], t.get("key_type"), t.get("sni"), t.get("cert")),
                  (listener, got["version"], want_kind, sni_logged, self.files[want]),
                  "%s: event=tls (listener, version, key_type, sni, cert)" % label)
        if got["smtp"] is not None:
            deliver(got["smtp"], self.be, "%s, %s" % (label, want))
        self.n += 1
        return t


def deliver(s, backend, subject):
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n"
           % (SENDER, RCPT, subject, subject)).encode()
    first = len(backend.messages)
    mwtest.eq(s.sendmail(SENDER, [RCPT], msg), {}, "recipients refused (%s)" % subject)
    s.quit()
    msgs = backend.wait_messages(first + 1, 10)
    mwtest.eq(len(msgs), first + 1, "messages at the backend (%s)" % subject)
    mwtest.eq((msgs[-1].mail_from, msgs[-1].rcpt_tos, msgs[-1].data), (SENDER, [RCPT], msg),
              "message at the backend (%s)" % subject)


def run_case(env, mw, ck, listener, case):
    client, sni, want, logged = case
    port, starttls = mw.port(listener), listener == "smtp"
    what = "%s asking for %s" % (client, "no name" if sni is None else repr(sni))
    if client.startswith("py"):
        fn = lambda: py_smtp(env, port, starttls, sni, client == "py-rsa")  # noqa: E731
    else:
        opts = {"sc": [], "sc-rsa12": RSA12, "sc-rsa13": RSA13}[client]
        fn = lambda: sclient(env, port, starttls, sni, OWN[want], opts)  # noqa: E731
    return ck.expect(listener, want, logged, what, fn)


# -- the steps ------------------------------------------------------------------------------
def check_certificates(mw, files, lists, lines):
    """event=certificate lines: one per certificate and listener."""
    got = sorted((l["listener"], l["cert"], l["key_type"], l["names"], l["_level"])
                 for l in lines)
    want = sorted((lst, files[c], mwtest.cert_file_info(files[c])[1], NAMES[c], "info")
                  for lst, labels in lists.items() for c in labels)
    mwtest.eq(got, want, "event=certificate lines (listener, cert, key_type, names, level)")


def sclient12(env, port, name, opts):
    """One s_client TLS 1.2 session asking for name: its output."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-starttls", "smtp",
            "-tls1_2", "-servername", name, "-CAfile", os.path.join(env.certs, "ca.pem")]
    r = subprocess.run(argv + list(opts), input=b"QUIT\r\n", capture_output=True, timeout=30)
    text = (r.stdout + r.stderr).decode("utf-8", "replace")
    mwtest.check(r.returncode == 0 and re.search(r"^(New|Reused), TLSv1\.2, ", text, re.M),
                 "$ %r\n-> exit %d:\n%s" % (argv + list(opts), r.returncode, text))
    return text


def check_resumption(env, files, keys):
    """Step 6: resumption never hands a session to another name."""
    certs = [files[c] for c in ("a-ec", "a-rsa", "c-rsa")]
    be = env.recorder()
    mw = env.mailward(listeners={"one": {
        "accept_tls": "starttls", "forward": "127.0.0.1:%d" % be.port,
        "cert": certs, "key": [keys[f] for f in certs]}})
    port = mw.port("one")
    for first, then, want, cert in (("a.test", "a.test", "Reused", "a-ec"),
                                    ("a.test", "c.test", "New", "c-rsa"),
                                    ("c.test", "a.test", "New", "a-ec")):
        sess = env.path("sess-%d.pem" % time.monotonic_ns())
        text = sclient12(env, port, first, ["-sess_out", sess])
        mwtest.check(re.search(r"^New, ", text, re.M), "%s: a new session" % first)
        text = sclient12(env, port, then, ["-sess_in", sess])
        how = re.search(r"^(New|Reused), ", text, re.M).group(1)
        print("session ticket of %s, resumed asking for %s: %s" % (first, then, how))
        mwtest.eq(how, want, "TLS 1.2 session of %s resumed asking for %s" % (first, then))
        pem = re.search(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", text,
                        re.S)
        mwtest.check(pem or how == "Reused", "%s -> %s: no certificate" % (first, then))
        if pem:
            mwtest.eq(mwtest.cert_info(pem.group(0))[0], mwtest.cert_file_info(files[cert])[0],
                      "%s -> %s: the certificate for %s" % (first, then, cert))
    text = sclient12(env, port, "a.test", ["-no_ticket"])
    sid = re.search(r"^ *Session-ID: *(\S*)$", text, re.M)
    mwtest.check(sid, "s_client -no_ticket printed no Session-ID line:\n%s" % text)
    mwtest.eq(sid.group(1), "", "session ID in the ServerHello without tickets")
    mw.stop()


def check_config(env, conf, files, keys, wild2):
    """Step 4: mailward -t."""
    r = mwtest.run_mailward(["-t", "-c", conf])
    mwtest.eq((r.returncode, r.stdout, r.stderr), (0, "%s: configuration OK\n" % conf, ""),
              "mailward -t on the running configuration")
    a2, ab, nn = files["a2-ec"], files["ab-ec"], files["nn-ec"]
    one = "%s would never be served: %s, before it, has the same key type and every name it has"
    two = ("%s would never be served: %s and others before it with the same key type have "
           "every name it has")
    none = ("%s would never be served: it names no host, and a client that can take it "
            "gets %s")
    for order, bad in (([files["a-ec"], files["a-rsa"], a2], one % (a2, files["a-ec"])),
                       ([files["b-wild"], wild2], one % (wild2, files["b-wild"])),
                       ([wild2, files["b-wild"]], one % (files["b-wild"], wild2)),
                       ([files["a-ec"], files["xb-ec"], ab], two % (ab, files["a-ec"])),
                       ([files["a-rsa"], files["a-ec"], nn], none % (nn, files["a-ec"])),
                       ([files["a-rsa"], nn], none % (nn, files["a-rsa"])),
                       ([nn, files["a-ec"]], None),
                       ([a2, files["a-ec"]], None)):
        path, _ = env.mailward_config({"smtp": {
            "accept_tls": "starttls", "forward": "127.0.0.1:9",
            "cert": order, "key": [keys[f] for f in order]}})
        with open(path) as f:
            section = 1 + f.read().splitlines().index("[smtp]")
        r = mwtest.run_mailward(["-t", "-c", path])
        print("-t, cert = %r: exit %d %r %r" % (order, r.returncode, r.stdout, r.stderr))
        if bad is None:
            mwtest.eq((r.returncode, r.stderr), (0, ""), "mailward -t, cert = %r" % order)
            continue
        mwtest.eq((r.returncode, r.stderr), (1, "%s:%d: [smtp]: certificate %s\n"
                                             % (path, section, bad)),
                  "mailward -t, cert = %r" % order)


def main():
    if not shutil.which("openssl"):
        mwtest.skip("openssl is not installed")
    with mwtest.Env("sni_cert") as env:
        t0 = time.monotonic()
        d = env.path("c")
        os.makedirs(d)
        os.chmod(d, 0o755)
        files, keys = {}, {}       # label -> certificate file -> key file
        # d-ec for step 5; a2-ec, w2-ec, ab-ec and nn-ec (no host name:
        # a CN with a blank, an IP address) for step 4's errors.
        more = {"d-ec": ("d.test", ["d.test"], "ec"),
                "a2-ec": ("www.a.test", ["www.a.test"], "ec"),
                "w2-ec": ("wild2", ["*.B.test."], "ec"),
                "ab-ec": ("a.test", ["a.test", "x.b.test"], "ec"),
                "nn-ec": ("no name", ["127.0.0.3"], "ec")}
        # Copies readable by mailward's user (nobody, as root) on SIGHUP.
        for label, (cn, sans, key) in list(CERTS.items()) + list(more.items()):
            pem, k = mwtest.make_leaf_cert(env, cn, sans, key=key)
            files[label] = os.path.join(d, label + ".pem")
            keys[files[label]] = os.path.join(d, label + ".key")
            mwtest.put_file(pem, files[label])
            mwtest.put_file(k, keys[files[label]])
        order = [files[c] for c in CERTS]

        def listeners(more=()):
            """"smtp": a file a line; "smtps": two a line (a line holds 198
            characters), a comma between, then a blank, by turns."""
            certs = order + [files[c] for c in more]

            def pairs(paths):
                return [(",", " ")[i % 2].join(paths[2 * i:2 * i + 2])
                        for i in range((len(paths) + 1) // 2)]
            return {
                "smtp": {"accept_tls": "starttls", "forward": fwd, "listen": listen["smtp"],
                         "cert": certs, "key": [keys[f] for f in certs]},
                "smtps": {"accept_tls": "implicit", "forward": fwd, "listen": listen["smtps"],
                          "cert": pairs(certs), "key": pairs([keys[f] for f in certs])}}
        prom = mwtest.metrics_file(env)
        be = env.recorder()
        fwd = "127.0.0.1:%d" % be.port
        listen = {l: "127.0.0.1:%d" % mwtest.free_port() for l in ("smtp", "smtps")}
        glob = {"workers": 2, "metrics_file": prom}
        mw = env.mailward(listeners=listeners(), globals=glob)
        ck = Checker(mw, files, be)

        # 1. event=certificate lines and metrics at start.
        lists = {"smtp": list(CERTS), "smtps": list(CERTS)}
        check_certificates(mw, files, lists, mwtest.log_events(mw, "certificate"))
        want_metric = {(lst, files[c], mwtest.cert_file_info(files[c])[1]): mwtest.cert_file_info(files[c])[2]
                       for lst in lists for c in CERTS}
        mwtest.check(mwtest.wait_for(lambda: metric_certs(prom) == want_metric, 5),
                     "certificate metrics at start: %r, want %r"
                     % (metric_certs(prom), want_metric))

        # 2, 3. Who gets what; Python's sessions deliver a message each.
        for lst in ("smtp", "smtps"):
            for case in CASES:
                run_case(env, mw, ck, lst, case)
        if shutil.which("swaks"):
            for lst, sni, want in (("smtp", "mx.b.test", "b-wild"), ("smtps", "c.test", "c-rsa")):
                first = len(be.messages)
                ck.expect(lst, want, sni, "swaks --tls-sni " + sni,
                          lambda: swaks(env, mw.port(lst), lst == "smtp", sni, "swaks " + sni))
                msgs = be.wait_messages(first + 1, 10)
                mwtest.check(len(msgs) == first + 1 and
                             (msgs[-1].mail_from, msgs[-1].rcpt_tos) == (SENDER, [RCPT]) and
                             b"\r\n\r\nbody of swaks %s\r\n" % sni.encode() in msgs[-1].data,
                             "swaks' message at the backend: %r" % msgs[first:])
        else:
            print("swaks is not installed: its part is skipped")

        # 4. mailward -t.
        check_config(env, mw.conf, files, keys, files["w2-ec"])

        # 5. SIGHUP with d.test's certificate added to mw.conf.
        for lst in ("smtp", "smtps"):
            run_case(env, mw, ck, lst, ("sc", "d.test", "a-ec", "d.test"))
        n_cert, n_reload = len(mwtest.log_events(mw, "certificate")), len(mwtest.log_events(mw, "reload_tls"))
        mwtest.write_config(env, mw.conf, listeners(["d-ec"]), glob, mw.alert_log)
        os.kill(mw.pid, signal.SIGHUP)

        def reloaded():    # by the supervisor and both workers, then logged again
            return (len({(l["listener"], l["_pid"])
                         for l in mwtest.log_events(mw, "reload_tls")[n_reload:]}) == 6 and
                    len(mwtest.log_events(mw, "certificate")) >= n_cert + 14)
        mwtest.check(mwtest.wait_for(reloaded, 10), "reload_tls not logged by 3 processes for "
                     "both listeners, or certificates not again:\n%s" % mw.log()[-4000:])
        mwtest.eq(mwtest.log_events(mw, "reload_tls_failed"), [], "reload_tls_failed lines")
        new = order + [files["d-ec"]]
        mwtest.eq(sorted({(l["listener"], l["cert"]) for l in mwtest.log_events(mw, "reload_tls")
                          [n_reload:]}),
                  [("smtp", ",".join(new)), ("smtps", ",".join(new))], "reload_tls lines")
        mwtest.eq({(l["applied"], l["restart_needed"]) for l in mwtest.log_events(mw, "reload_config")},
                  {("[smtp] cert [smtp] key [smtps] cert [smtps] key", "")},
                  "reload_config lines (applied, restart_needed)")
        lists = {"smtp": list(CERTS) + ["d-ec"], "smtps": list(CERTS) + ["d-ec"]}
        check_certificates(mw, files, lists, mwtest.log_events(mw, "certificate")[n_cert:])
        n_tls = len(mwtest.tls_sessions(mw))
        for lst in ("smtp", "smtps"):
            for _ in range(5):
                run_case(env, mw, ck, lst, ("py", "d.test", "d-ec", "d.test"))
                run_case(env, mw, ck, lst, ("sc", "d.test", "d-ec", "d.test"))
            run_case(env, mw, ck, lst, ("sc-rsa13", "d.test", "a-rsa", "d.test"))
            run_case(env, mw, ck, lst, ("sc", None, "a-ec", "-"))
            run_case(env, mw, ck, lst, ("py", "mx.b.test", "b-wild", "mx.b.test"))
        pids = sorted({int(t["_pid"]) for t in mwtest.tls_sessions(mw)[n_tls:]})
        mwtest.eq(pids, mwtest.children(mw.pid), "processes that served after SIGHUP (workers)")

        # 6. Resumption, on a mailward of its own.
        check_resumption(env, files, keys)

        mw.stop()
        # 7. The metrics written at exit: the seven certificates per listener.
        want_metric.update({(lst, files["d-ec"], "ecdsa"): mwtest.cert_file_info(files["d-ec"])[2]
                            for lst in lists})
        mwtest.eq(metric_certs(prom), want_metric, "certificate metrics after the stop")
        print("%d TLS sessions checked, %d messages, in %.1f s"
              % (ck.n, len(be.messages), time.monotonic() - t0))
    print("ok")


if __name__ == "__main__":
    main()
