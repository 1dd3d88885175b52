#!/usr/bin/python3
"""SIGHUP reloads certificates (README, "Configuration in brief";
mailward(8), SIGHUP): every listener's cert and key, and the trust anchors
(forward_ca) of one that speaks TLS to its server side, read again as the
unprivileged user. Python's smtplib and ssl are the clients; aiosmtpd the
backend and an implicit-TLS smarthost. Loopback only.

One process, listeners "in" (STARTTLS), "ins" (implicit TLS), both with
cert.pem/key.pem, and "wrap" (a plaintext client to an implicit-TLS
smarthost, forward_ca = anchors.pem):

  1. The ECDSA certificate is served on both; a session is opened and held
     after its post-TLS EHLO. anchors.pem holds a CA that did not sign the
     smarthost's certificate: "wrap" gets no 250 for its message.
  2. cert.pem/key.pem become the RSA pair and anchors.pem the test CA (each
     a new file renamed over the old, as certbot and editors do); SIGHUP:
     reload_tls for all three listeners; new sessions on both listeners get
     the RSA certificate and deliver; the held session, made with the ECDSA
     certificate, still delivers; "wrap" now delivers to the smarthost.
  3. key.pem no longer matches cert.pem: SIGHUP logs reload_tls_failed (the
     key does not match) for "in" and "ins", and they keep serving RSA.
  4. (as root, mailward running as nobody) a matching ECDSA pair whose key
     only root may read: reload_tls_failed (permission), still RSA; the key
     made readable and SIGHUP again: ECDSA.

With workers = 2 and a metrics_file: at start one event=certificate line
(info, days_left over 300) and the certificate's notAfter (as openssl
reads it) in mailward_certificate_expiry_timestamp_seconds. A reload to a
certificate valid for 10 days reaches both workers (every new session gets
it), the supervisor logs it once as a warning ("renew it soon"), and the
metric follows; workers started after both are killed serve it too (the
supervisor reloaded its own copy).

Started on a certificate that expired in 2020 (no workers, a metrics_file):
-t says the configuration is OK and mailward starts and serves it (a client
that verifies refuses it); one event=certificate line at level err with
days_left negative (days to notAfter rounded down: -1 on the day after it)
and note="expired: renew it", its not_after and the metric both the
certificate's notAfter as openssl reads it. Renewed and reloaded: the next line is info again, with no note."""

import datetime
import hashlib
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

MSG = b"From: a@client.test\r\nSubject: reload\r\n\r\nbody\r\n"


def pem_fingerprint(path):
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def client_ctx(env):
    return ssl.create_default_context(cafile=os.path.join(env.certs, "ca.pem"))


def served(env, mw, name, implicit):
    """The SHA-256 of the certificate a new session on listener `name` gets."""
    ctx = client_ctx(env)
    if implicit:
        with socket.create_connection(("127.0.0.1", mw.port(name)), timeout=20) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    s = smtplib.SMTP("127.0.0.1", mw.port(name), local_hostname="client.test", timeout=20)
    try:
        s.starttls(context=ctx)
        return hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()
    finally:
        s.close()


def open_starttls(env, mw, name):
    s = smtplib.SMTP("localhost", mw.port(name), local_hostname="client.test", timeout=20)
    s.starttls(context=client_ctx(env))
    s.ehlo()
    return s


def deliver(s, backend, what):
    first = len(backend.messages)
    refused = s.sendmail("a@client.test", ["b@example.test"], MSG)
    mwtest.eq(refused, {}, "recipients refused (%s)" % what)
    msgs = backend.wait_messages(first + 1, 10)
    mwtest.eq(len(msgs), first + 1, "messages at the backend (%s)" % what)
    mwtest.eq(msgs[-1].data, MSG, "message bytes (%s)" % what)


def hup_and_wait(mw, events, n=1):
    """SIGHUP to mailward; wait until each (event, listener) in `events` has
    been logged by `n` more processes; return the log."""
    def count(log, ev, lst):
        return len(re.findall(r"mailward\[\d+\]: \w+: (?:\S+ )?event=%s listener=%s "
                              % (ev, lst), log))
    before = {e: count(mw.log(), *e) for e in events}
    os.kill(mw.pid, signal.SIGHUP)
    ok = mwtest.wait_for(lambda: all(count(mw.log(), *e) >= before[e] + n for e in events), 10)
    log = mw.log()
    mwtest.check(ok, "after SIGHUP, not every one of %r logged by %d process(es):\n%s"
                 % (events, n, log[-3000:]))
    return log


def wrap_send(mw):
    """A plaintext message through "wrap"; the reply codes seen."""
    s = smtplib.SMTP("127.0.0.1", mw.port("wrap"), local_hostname="legacy.test", timeout=20)
    try:
        s.ehlo()
        codes = [s.mail("a@client.test")[0]]
        if codes[-1] == 250:
            codes.append(s.rcpt("b@example.test")[0])
        if codes[-1] == 250:
            try:
                codes.append(s.data(MSG)[0])
            except smtplib.SMTPResponseException as e:
                codes.append(e.smtp_code)
        s.quit()
    except smtplib.SMTPServerDisconnected:
        codes.append("disconnected")
    return codes


def tls_files(env, name):
    """A directory `name` with cert.pem and key.pem, the ECDSA pair to begin
    with; returns (cert, key, fingerprint of ECDSA, fingerprint of RSA)."""
    d = env.path(name)
    os.makedirs(d)
    os.chmod(d, 0o755)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    mwtest.put_file(os.path.join(env.certs, "server.pem"), cert)
    mwtest.put_file(os.path.join(env.certs, "server.key"), key)
    return (cert, key) + tuple(pem_fingerprint(os.path.join(env.certs, f))
                               for f in ("server.pem", "server-rsa.pem"))


def single(env):
    certs = env.certs
    cert, key, ecdsa, rsa = tls_files(env, "tls")
    anchors = env.path("tls", "anchors.pem")
    mwtest.put_file(os.path.join(certs, "selfsigned.pem"), anchors)

    backend = env.recorder()
    smarthost = env.recorder(tls="implicit", hostname="smarthost.test")
    tlsconf = {"cert": cert, "key": key, "forward": "127.0.0.1:%d" % backend.port,
               "hostname": "mw.test"}
    mw = env.mailward(listeners={
        "in": dict(tlsconf, accept_tls="starttls"),
        "ins": dict(tlsconf, accept_tls="implicit"),
        "wrap": {"accept_tls": "none", "require_tls": "no", "forward_tls": "implicit",
                 "forward_ca": anchors, "forward": "localhost:%d" % smarthost.port,
                 "hostname": "mw.test"}})

    # 1
    mwtest.eq(served(env, mw, "in", False), ecdsa, "certificate on STARTTLS at start")
    mwtest.eq(served(env, mw, "ins", True), ecdsa, "certificate on implicit TLS at start")
    held = open_starttls(env, mw, "in")
    mwtest.eq(hashlib.sha256(held.sock.getpeercert(binary_form=True)).hexdigest(), ecdsa,
              "certificate of the held session")
    codes = wrap_send(mw)
    print("wrap, untrusted smarthost: %r" % codes)
    mwtest.check(codes[2:3] != [250],
                 "a message went to a smarthost that anchors.pem does not trust: %r" % codes)
    mwtest.eq(len(smarthost.messages), 0, "messages at the untrusted smarthost")

    # 2
    mwtest.put_file(os.path.join(certs, "server-rsa.pem"), cert)
    mwtest.put_file(os.path.join(certs, "server-rsa.key"), key)
    mwtest.put_file(os.path.join(certs, "ca.pem"), anchors)
    log = hup_and_wait(mw, [("reload_tls", "in"), ("reload_tls", "ins"),
                            ("reload_tls", "wrap")])
    mwtest.check("tls=3 tls_failed=0" in log, "the sighup line does not count 3 reloads")
    mwtest.eq(served(env, mw, "in", False), rsa, "certificate on STARTTLS after the reload")
    mwtest.eq(served(env, mw, "ins", True), rsa, "certificate on implicit TLS after the reload")
    s = open_starttls(env, mw, "in")
    deliver(s, backend, "a session after the reload")
    s.quit()
    deliver(held, backend, "the session held across the reload")
    held.quit()
    mwtest.eq(wrap_send(mw), [250, 250, 250], "wrap after anchors.pem was reloaded")
    mwtest.eq(len(smarthost.wait_messages(1, 10)), 1, "messages at the smarthost")

    # 3
    mwtest.put_file(os.path.join(certs, "server.pem"), cert)
    log = hup_and_wait(mw, [("reload_tls_failed", "in"), ("reload_tls_failed", "ins")])
    mwtest.check(re.search(r"event=reload_tls_failed listener=in reason=\"key \S+ does not "
                           r"match certificate \S+\" action=\"kept what was loaded before, "
                           r"for what failed\"", log), "no reload_tls_failed line saying why")
    mwtest.check("tls=1 tls_failed=2" in log, "the sighup line does not count 1 reload, 2 failed")
    mwtest.eq(served(env, mw, "in", False), rsa, "certificate on STARTTLS after a bad key")
    mwtest.eq(served(env, mw, "ins", True), rsa, "certificate on implicit TLS after a bad key")

    # 4
    if mwtest.is_root():
        mwtest.put_file(os.path.join(certs, "server.key"), key, mode=0o600)  # root's
        log = hup_and_wait(mw, [("reload_tls_failed", "in")])
        lines = [l for l in log.splitlines() if "event=reload_tls_failed listener=in " in l]
        print("unreadable key: %s" % lines[-1])
        mwtest.check("ermission denied" in lines[-1], "the failure does not say why: "
                     + lines[-1])
        mwtest.eq(served(env, mw, "in", False), rsa, "certificate after an unreadable key")
        os.chmod(key, 0o644)
        hup_and_wait(mw, [("reload_tls", "in")])
        mwtest.eq(served(env, mw, "in", False), ecdsa, "certificate once the key is readable")
    else:
        print("step 4 left out: not root, mailward does not drop privileges")
    mw.stop()


def openssl_not_after(path):
    r = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-enddate", "-dateopt",
                        "iso_8601"], capture_output=True, text=True, check=True)
    when = datetime.datetime.strptime(r.stdout.strip(), "notAfter=%Y-%m-%d %H:%M:%SZ")
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def expiry_metric(prom):
    """mailward_certificate_expiry_timestamp_seconds{listener="in",
    use="server",key_type="ecdsa",cert=...} of the metrics file, or None."""
    try:
        with open(prom) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    m = re.search(r'^mailward_certificate_expiry_timestamp_seconds'
                  r'\{listener="in",use="server",key_type="ecdsa",cert="[^"]+"\} (\d+)$',
                  text, re.M)
    return int(m.group(1)) if m else None


def cert_lines(mw):
    return re.findall(r"mailward\[\d+\]: (\w+): - event=certificate listener=in use=server "
                      r"cert=\S+ "
                      r"key_type=ecdsa names=\S+ not_after=(\S+) days_left=(-?\d+)(.*)",
                      mw.log())


def workers(env):
    cert, key, ecdsa, _ = tls_files(env, "tls-workers")
    short = mwtest.make_leaf_cert(env, "localhost", ["localhost", "127.0.0.1"], days=10)
    short_fp = pem_fingerprint(short[0])
    prom = mwtest.metrics_file(env)
    backend = env.recorder()
    mw = env.mailward(listeners={"in": {"accept_tls": "starttls", "cert": cert, "key": key,
                                        "forward": "127.0.0.1:%d" % backend.port}},
                      globals={"workers": 2, "metrics_file": prom})
    mwtest.eq({served(env, mw, "in", False) for _ in range(6)}, {ecdsa},
              "certificates served by two workers at start")
    # When the certificate expires: logged once at start, and in the metrics.
    want = openssl_not_after(cert)
    got = cert_lines(mw)
    print("certificate lines: %r" % got)
    mwtest.eq([(lvl, days_left_ok) for lvl, _, d, _ in got
               for days_left_ok in [int(d) > 300]], [("info", True)],
              "event=certificate lines at start (level, days_left > 300)")
    mwtest.eq(expiry_metric(prom), want, "certificate expiry in the metrics at start")

    # The reload: a certificate that expires in 10 days.
    mwtest.put_file(short[0], cert)
    mwtest.put_file(short[1], key, mode=0o644)
    hup_and_wait(mw, [("reload_tls", "in")], n=3)
    mwtest.eq({served(env, mw, "in", False) for _ in range(12)}, {short_fp},
              "certificates served by two workers after the reload")
    got = cert_lines(mw)
    print("certificate lines: %r" % got)
    # 10 days from when the certificate was made, less the seconds since.
    mwtest.eq([(lvl, d in ("9", "10"), note.strip()) for lvl, _, d, note in got[1:]],
              [("warning", True, 'note="renew it soon"')],
              "event=certificate lines after the reload (one, from the supervisor; level, "
              "days_left 9 or 10, note)")
    want = openssl_not_after(short[0])
    mwtest.check(mwtest.wait_for(lambda: expiry_metric(prom) == want, 15),
                 "certificate expiry in the metrics after the reload: %r, want %d"
                 % (expiry_metric(prom), want))
    old = mwtest.children(mw.pid)
    mwtest.eq(len(old), 2, "workers")
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    mwtest.check(mwtest.wait_for(lambda: len(set(mwtest.children(mw.pid)) - set(old)) == 2
                                 and mwtest.is_listening(mw.port("in")), 15),
                 "no two new workers: %r" % mwtest.children(mw.pid))
    mwtest.eq({served(env, mw, "in", False) for _ in range(12)}, {short_fp},
              "certificates served by restarted workers")
    s = open_starttls(env, mw, "in")
    deliver(s, backend, "through a restarted worker")
    s.quit()
    mw.stop()


def expired(env):
    old = mwtest.make_leaf_cert(env, "localhost", ["localhost", "127.0.0.1"], kind="expired")
    d = env.path("tls-expired")
    os.makedirs(d)
    os.chmod(d, 0o755)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    mwtest.put_file(old[0], cert)
    mwtest.put_file(old[1], key)
    old_fp = pem_fingerprint(cert)
    want = openssl_not_after(cert)
    prom = mwtest.metrics_file(env, "metrics-expired")
    backend = env.recorder()
    listeners = {"in": {"accept_tls": "starttls", "cert": cert, "key": key,
                        "forward": "127.0.0.1:%d" % backend.port}}
    conf, _ = env.mailward_config(listeners, globals={"metrics_file": prom})
    r = mwtest.run_mailward(["-t", "-c", conf])
    mwtest.eq((r.returncode, r.stdout), (0, "%s: configuration OK\n" % conf),
              "mailward -t on an expired certificate (stderr %r)" % r.stderr)

    t0 = time.time()
    mw = env.mailward(listeners=listeners, globals={"metrics_file": prom})
    t1 = time.time()
    # What a client sees: the expired certificate, which a verifying client refuses.
    noverify = ssl.create_default_context()
    noverify.check_hostname = False
    noverify.verify_mode = ssl.CERT_NONE
    s = smtplib.SMTP("127.0.0.1", mw.port("in"), local_hostname="client.test", timeout=20)
    s.starttls(context=noverify)
    mwtest.eq(hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest(), old_fp,
              "certificate served when started on an expired one")
    s.close()
    try:
        served(env, mw, "in", False)
        mwtest.fail("a verifying client accepted the expired certificate")
    except ssl.SSLCertVerificationError as e:
        mwtest.check("expired" in str(e), "verification failed, not as expired: %s" % e)

    got = cert_lines(mw)
    print("certificate lines: %r" % got)
    # Whole days rounded down, as Python's // does.
    days = {int(want - t) // 86400 for t in (t0, t1)}
    mwtest.check(max(days) < 0, "the test certificate is not expired: %r" % days)
    when = datetime.datetime.fromtimestamp(want, datetime.timezone.utc)
    mwtest.eq([(lvl, na, int(d) in days, note.strip()) for lvl, na, d, note in got],
              [("err", when.strftime("%Y-%m-%dT%H:%M:%SZ"), True,
                'note="expired: renew it"')],
              "event=certificate lines at start (level, not_after, days_left in %r, note)"
              % sorted(days))
    mwtest.eq(expiry_metric(prom), want, "certificate expiry in the metrics at start")

    # Renewed: SIGHUP and the line is info again.
    mwtest.put_file(os.path.join(env.certs, "server.pem"), cert)
    mwtest.put_file(os.path.join(env.certs, "server.key"), key)
    hup_and_wait(mw, [("reload_tls", "in")])
    got = cert_lines(mw)
    print("certificate lines: %r" % got)
    mwtest.eq([(lvl, int(d) > 300, note.strip()) for lvl, _, d, note in got[1:]],
              [("info", True, "")],
              "event=certificate lines after the renewal (level, days_left > 300, note)")
    mw.stop()


def main():
    with mwtest.Env("reload_tls") as env:
        single(env)
        workers(env)
        expired(env)
    print("ok")


if __name__ == "__main__":
    main()
