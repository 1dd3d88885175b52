#!/usr/bin/python3
"""Outbound with DANE for SMTP (RFC 7672): the policy table's levels dane and
dane-only, and default_level = dane.

The test bed (network namespaces, documentation addresses only):

  192.0.2.10:25   aiosmtpd with STARTTLS, certificate for mx.dane.test (test
                  CA; the leaf alone is sent): most MX hosts point here
  192.0.2.11:25   aiosmtpd with STARTTLS, certificate for mx.ta.test signed
                  by the test CA, the chain (leaf and CA) sent
  192.0.2.12:25   aiosmtpd without STARTTLS
  192.0.2.13:25   aiosmtpd with STARTTLS, certificate for relay.dane.test: the
                  relay host (relayhost = relay.dane.test)
  192.0.2.14:25   aiosmtpd with STARTTLS, certificate for other.test: the relay
                  host's second address
  192.0.2.54:53   nsd: the zone test., signed (KSK and ZSK, algorithm 13),
                  its unsigned child insecure.test., and two bogus records
  192.0.2.53:53   dnsmasq validating test. (trust anchor: test.'s DS); the
                  sender's resolv.conf names it, "options trust-ad edns0"

First the test bed proves itself: through the resolver, dig +dnssec gets the
AD bit for test.'s records, none for insecure.test.'s, SERVFAIL for the bogus
ones, and glibc's res_query() in the sender sees the AD bit; 192.0.2.11 sends
two certificates.

TLSA data is computed from the certificate files: 3 1 1 is the SHA-256 of the
certificate's public key (SPKI), 2 0 1 the SHA-256 of the whole CA
certificate. "other" is the key of a certificate no server uses.

mailward: default_level dane, relayhost = relay.dane.test (A .13 and .14, 3 1 1
of .13's key), and the table below. One session per recipient:

  domain              level      published (MX host -> address, TLSA)   outcome
  1 dane.test         dane       mx.dane.test -> .10, 3 1 1 dest      delivered, match-ee
  2 wrongtlsa.test    dane       mx -> .10, 3 1 1 other               451 tlsa-invalid, alert
  3 ta.test           dane-only  mx.ta.test -> .11, 2 0 1 the CA      delivered, match-ta
    tawrongname.test  dane       mx -> .11 (cert names mx.ta.test),
                                 2 0 1 the CA                         451 certificate-host-
                                                                      mismatch, alert
  4 dane.insecure.test dane      mx.insecure.test -> .10 (unsigned),
                                 3 1 1 other (unsigned: ignored)      delivered over TLS
    only.insecure.test dane-only the same                             451 dane-required
  5 notls.test        dane       mx -> .12, no TLSA                   451 starttls-not-supported
  6 bogustlsa.test    dane       mx -> .10, TLSA 3 1 1 dest, bogus    451 dnssec-invalid
    bogusaddr.test    dane       mx -> .10 bogus, 3 1 1 dest          451 dnssec-invalid
  7 dflt.test         (default)  mx -> .10, 3 1 1 dest                delivered, match-ee
    dfltwrong.test    (default)  mx -> .10, 3 1 1 other               451 tlsa-invalid, alert
                                                                      "dane (default)"
  8 wrongmx.test      dane-only  mx -> .98 only, 3 1 1 dest           451 dane-required
    insecmx.test      dane-only  mx.insecure.test (unsigned address)  451 dane-required
  9 backup.test       dane       10 mx1 -> .98 (3 1 1 other),
                                 20 mx2 -> .10 (3 1 1 dest)           delivered, mx2 chosen
    nomx.test         dane-only  no MX; nomx.test -> .10, 3 1 1 dest  delivered (own host)
    notlsa.test       dane-only  mx -> .10, no TLSA                   451 dane-required
    unusable.test     dane-only  mx -> .10, 1 1 1 dest and 0 0 1 CA   451 dane-required
                                 (PKIX usages: unusable)
 10 plain.test        encrypt    mx -> .10, 3 1 1 other               delivered; no DNS query
 11 vfy.test          verify     mx.dane.test (secure) -> .10         delivered: hostname matches
    vfy.insecure.test verify     mx.insecure.test (unsigned) -> .10   451 certificate-host-mismatch
                                 (the certificate is mx.dane.test's; the reply names the MX host)
    vfyelse.test      verify     mx -> .98 only                       451: nexthop:dot-nexthop
 12 cname.test        dane-only  mx.cname.test CNAME real -> .10,     delivered (TLSA at the target)
                                 3 1 1 dest at the target
    cname2.test       dane-only  the same, 3 1 1 dest at the alias     delivered (the alias's own)
    cname3.test       dane       3 1 1 other at the target, dest at   451 tlsa-invalid (the target
                                 the alias                             wins)
 13 dane.test again   SIGHUP     the cached lookup is dropped         MX asked again (not before)
 14 far.test          dane-only  mx -> .98 only; sent to .13 (relay)  delivered, match-ee with the
                                                                      relay host's TLSA
    farwrong.test     dane       the same; sent to .14 (relay)        451 tlsa-invalid
    farvfy.test       verify     the same; sent to .13                delivered: hostname is the
                                                                      relay host
    farsec.test       secure     the same; sent to .13                delivered: nexthop is the
                                                                      relay host
    bogusmx.test      dane-only  MX record bogus; sent to .13         delivered (the relay host)
                                 sent to .10 (no relay)               451 dnssec-invalid

Scenarios 1-13 run with the relay host configured too: a destination that
is an MX host of the domain is judged as that, whatever the relay host is.

Then the TLS-RPT results (tlsrpt = yes) of a selection of these domains:
policy type tlsa with the TLSA records and the MX host where the level used
validated records, no-policy-found otherwise, and each session's verdict;
none for the sessions to the relay host, which is not the domains' MX.

For every refusal: MAIL got mailward's own 250, RCPT 451 4.7.5 naming the
result, DATA 554, and nothing of the envelope reached the destination. The
alerts of tlsa-invalid and certificate-host-mismatch are certificate_invalid
with expected "dane (policy)" or "dane (default)"; that of dnssec-invalid is
dnssec_invalid, and that of dane-required is dane_required (severity
critical, action deferred).

tawrongname.test: its TLSA record matches (the chain leads to the CA), but the
leaf names neither the MX host nor the domain: RFC 8460 (4.3.2.1) calls that
certificate-host-mismatch ("did not adhere to the constraints specified in
the MTA-STS or DANE policy, e.g., if the MX hostname does not match"), and
keeps tlsa-invalid for "none of the records in the RRset were found to be
valid".
mailward then stops cleanly (status 0, no sanitizer report)."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402
import outcheck  # noqa: E402

log_events = outcheck.log_events

DEST, TA, NOTLS, RES, AUTH = "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.53", "192.0.2.54"
RELAY, RELAY2 = "192.0.2.13", "192.0.2.14"   # relay.dane.test's two addresses
ELSEWHERE = "192.0.2.98"          # an MX address nothing listens on; never connected to

TABLE = {
    "dane.test": "dane", "wrongtlsa.test": "dane", "ta.test": "dane-only",
    "tawrongname.test": "dane", "dane.insecure.test": "dane", "only.insecure.test": "dane-only",
    "notls.test": "dane", "bogustlsa.test": "dane", "bogusaddr.test": "dane",
    "wrongmx.test": "dane-only", "insecmx.test": "dane-only", "backup.test": "dane",
    "nomx.test": "dane-only", "notlsa.test": "dane-only", "unusable.test": "dane-only",
    "plain.test": "encrypt", "vfy.test": "verify", "vfy.insecure.test": "verify",
    "vfyelse.test": "verify", "cname.test": "dane-only", "cname2.test": "dane-only",
    "cname3.test": "dane", "far.test": "dane-only", "farwrong.test": "dane",
    "farvfy.test": "verify", "farsec.test": "secure", "bogusmx.test": "dane-only",
}



def sha256_hex(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True)
    mwtest.check(r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout


def tlsa_311(certfile):
    """3 1 1 data: SHA-256 of the certificate's SubjectPublicKeyInfo (DER),
    as `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`."""
    pub = openssl("x509", "-in", certfile, "-noout", "-pubkey")
    return sha256_hex(openssl("pkey", "-pubin", "-outform", "DER", stdin=pub))


def tlsa_201(certfile):
    """2 0 1 data: SHA-256 of the whole certificate (DER)."""
    return sha256_hex(openssl("x509", "-in", certfile, "-outform", "DER"))


def check_alert(mw, domain, n_before, expected, event=None, host=DEST):
    """One more alert for domain than n_before: deferred, from host:25, with
    expected (and event, when given). Returns it."""
    got = mwtest.wait_alerts(mw, n=n_before + 1, domain=domain)
    mwtest.eq(len(got), n_before + 1, "alerts for %s (all: %r)" % (domain, mw.alerts()))
    a = got[-1]
    print("alert: %r" % a)
    if event is not None:
        mwtest.eq(a.get("event"), event, "alert event (%s)" % domain)
    mwtest.eq([a.get("server"), a.get("expected"), a.get("action")],
              ["%s:25" % host, expected, "deferred"],
              "alert server, expected, action (%s)" % domain)
    mwtest.check(a.get("observed"), "alert without observed: %r" % a)
    return a


def check_dane_logged(mw, domain, mx, result):
    """An event=dane line for domain naming mx and result."""
    got = mwtest.wait_for(lambda: log_events(mw, "dane", domain), 5) or []
    print("dane lines for %s: %r" % (domain, got))
    mwtest.check([x for x in got if x.get("mx") == mx and x.get("result") == result],
                 "no event=dane line for %s with mx=%s result=%s (got %r); log:\n%s"
                 % (domain, mx, result, got, mw.log()[-3000:]))


def check_asked(bed, before, qtype, name):
    """The resolver was asked (qtype, name) since the count before."""
    n = bed.resolver.wait_queries(qtype, name, before + 1, timeout=2)
    mwtest.check(n > before, "mailward did not ask the resolver for %s %s (%d queries; "
                 "all: %r)" % (qtype, name, n, bed.resolver.queries()[-30:]))


def prove_bed(net, bed):
    """The test bed works: secure, insecure and bogus answers as intended,
    and glibc in the sender sees the AD bit."""
    for qtype, name in (("TLSA", "_25._tcp.mx.dane.test"), ("MX", "dane.test"),
                        ("A", "mx.dane.test"), ("TLSA", "_25._tcp.mx.ta.test")):
        d = bed.dig(qtype, name)
        mwtest.eq([d["status"], "ad" in d["flags"], bool(d["answer"])], ["NOERROR", True, True],
                  "test bed: %s %s through the resolver (status, AD bit, answer)"
                  % (qtype, name))
    d = bed.dig("TLSA", "_25._tcp.mx.notlsa.test")
    mwtest.eq([d["status"], "ad" in d["flags"], d["answer"]], ["NXDOMAIN", True, []],
              "test bed: TLSA _25._tcp.mx.notlsa.test (a secure denial: no such name)")
    d = bed.dig("AAAA", "mx.dane.test")
    mwtest.eq([d["status"], "ad" in d["flags"], d["answer"]], ["NOERROR", True, []],
              "test bed: AAAA mx.dane.test (a secure denial: no such type)")
    for qtype, name in (("A", "mx.insecure.test"), ("MX", "dane.insecure.test"),
                        ("TLSA", "_25._tcp.mx.insecure.test")):
        d = bed.dig(qtype, name)
        mwtest.eq([d["status"], "ad" in d["flags"], bool(d["answer"])],
                  ["NOERROR", False, True],
                  "test bed: %s %s in the unsigned child (status, AD bit, answer)"
                  % (qtype, name))
    for qtype, name in (("TLSA", "_25._tcp.mx.bogustlsa.test"), ("A", "mx.bogusaddr.test")):
        d = bed.dig(qtype, name)
        mwtest.eq(d["status"], "SERVFAIL", "test bed: bogus %s %s" % (qtype, name))
    # Asked by nsd directly (no validation), the bogus records are there.
    r = net.run(net.sender, ["dig", "+norec", "+short", "@" + AUTH, "mx.bogusaddr.test", "A"])
    mwtest.eq(r.stdout.split(), [DEST], "test bed: nsd's own answer for mx.bogusaddr.test")
    # glibc, with nothing but resolv.conf's "options trust-ad edns0".
    g = bed.glibc("TLSA", "_25._tcp.mx.dane.test")
    mwtest.eq([g["rcode"], g["ad"], g["len"] > 0], [0, True, True],
              "test bed: glibc res_query TLSA _25._tcp.mx.dane.test (rcode, AD, answer)")
    g = bed.glibc("A", "mx.insecure.test")
    mwtest.eq([g["rcode"], g["ad"], g["len"] > 0], [0, False, True],
              "test bed: glibc res_query A mx.insecure.test (rcode, AD, answer)")
    g = bed.glibc("TLSA", "_25._tcp.mx.bogustlsa.test")
    mwtest.eq([g["qr"], g["rcode"], g["ad"]], [True, 2, False],
              "test bed: glibc res_query of the bogus TLSA (an answer, SERVFAIL, no AD)")
    # 192.0.2.11 sends its chain (asked from inside its own namespace, where
    # no redirect to mailward is).
    r = subprocess.run(["ip", "netns", "exec", net.ns_of(TA), "openssl", "s_client",
                        "-connect", TA + ":25", "-starttls", "smtp", "-showcerts",
                        "-servername", "mx.ta.test"],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=20)
    mwtest.eq(r.stdout.count("-----BEGIN CERTIFICATE-----"), 2,
              "test bed: certificates sent by %s (leaf and CA)" % TA)


def main():
    start = time.monotonic()
    with mwtest.Env("out_dane") as env:
        net = env.netns(hosts=(DEST, TA, NOTLS, RELAY, RELAY2, RES, AUTH))

        # Certificates and TLSA data.
        ca = os.path.join(env.certs, "ca.pem")
        dest_cert = net.cert("mx.dane.test")
        ta_leaf = net.cert("mx.ta.test")
        ta_chain = env.path("mx.ta.test-chain.pem")
        with open(ta_chain, "wb") as out:
            for f in (ta_leaf[0], ca):
                with open(f, "rb") as fh:
                    out.write(fh.read())
        other = net.cert("other.test")
        relay_cert = net.cert("relay.dane.test")
        ee_dest, ee_other, ta_ca = tlsa_311(dest_cert[0]), tlsa_311(other[0]), tlsa_201(ca)
        ee_relay = tlsa_311(relay_cert[0])
        mwtest.check(len({ee_dest, ee_other}) == 2 and len(ee_dest) == 64,
                     "TLSA data: %r %r" % (ee_dest, ee_other))

        def domain(d, mxes, tlsa=None):
            """MX records (pref, host, address) and, per host, a TLSA record."""
            out = []
            for pref, host, addr in mxes:
                out += ["%s. MX %d %s." % (d, pref, host), "%s. A %s" % (host, addr)]
                if tlsa:
                    out.append("_25._tcp.%s. TLSA %s" % (host, tlsa))
            return out

        records = (
            domain("dane.test", [(10, "mx.dane.test", DEST)], "3 1 1 " + ee_dest) +
            domain("wrongtlsa.test", [(10, "mx.wrongtlsa.test", DEST)], "3 1 1 " + ee_other) +
            domain("ta.test", [(10, "mx.ta.test", TA)], "2 0 1 " + ta_ca) +
            domain("tawrongname.test", [(10, "mx.tawrongname.test", TA)], "2 0 1 " + ta_ca) +
            domain("notls.test", [(10, "mx.notls.test", NOTLS)]) +
            domain("dflt.test", [(10, "mx.dflt.test", DEST)], "3 1 1 " + ee_dest) +
            domain("dfltwrong.test", [(10, "mx.dfltwrong.test", DEST)], "3 1 1 " + ee_other) +
            domain("wrongmx.test", [(10, "mx.wrongmx.test", ELSEWHERE)], "3 1 1 " + ee_dest) +
            ["insecmx.test. MX 10 mx.insecure.test."] +
            domain("backup.test", [(10, "mx1.backup.test", ELSEWHERE)], "3 1 1 " + ee_other) +
            domain("backup.test", [(20, "mx2.backup.test", DEST)], "3 1 1 " + ee_dest) +
            ["nomx.test. A %s" % DEST, "_25._tcp.nomx.test. TLSA 3 1 1 " + ee_dest] +
            domain("notlsa.test", [(10, "mx.notlsa.test", DEST)]) +
            domain("unusable.test", [(10, "mx.unusable.test", DEST)]) +
            ["_25._tcp.mx.unusable.test. TLSA 1 1 1 " + ee_dest,
             "_25._tcp.mx.unusable.test. TLSA 0 0 1 " + ta_ca] +
            domain("plain.test", [(10, "mx.plain.test", DEST)], "3 1 1 " + ee_other) +
            ["bogustlsa.test. MX 10 mx.bogustlsa.test.", "mx.bogustlsa.test. A " + DEST] +
            domain("bogusaddr.test", [(10, "mx.bogusaddr.test", DEST)], "3 1 1 " + ee_dest) +
            ["vfy.test. MX 10 mx.dane.test."] +
            # MX hosts that are aliases: TLSA at the target first, then at the alias
            ["cname.test. MX 10 mx.cname.test.", "mx.cname.test. CNAME real.cname.test.",
             "real.cname.test. A " + DEST, "_25._tcp.real.cname.test. TLSA 3 1 1 " + ee_dest,
             "cname2.test. MX 10 mx.cname2.test.", "mx.cname2.test. CNAME real.cname2.test.",
             "real.cname2.test. A " + DEST, "_25._tcp.mx.cname2.test. TLSA 3 1 1 " + ee_dest,
             "cname3.test. MX 10 mx.cname3.test.", "mx.cname3.test. CNAME real.cname3.test.",
             "real.cname3.test. A " + DEST, "_25._tcp.real.cname3.test. TLSA 3 1 1 " + ee_other,
             "_25._tcp.mx.cname3.test. TLSA 3 1 1 " + ee_dest] +
            domain("vfyelse.test", [(10, "mx.vfyelse.test", ELSEWHERE)]) +
            # The relay host, and domains whose MX hosts are elsewhere
            ["relay.dane.test. A " + RELAY, "relay.dane.test. A " + RELAY2,
             "_25._tcp.relay.dane.test. TLSA 3 1 1 " + ee_relay] +
            [r for d in ("far.test", "farwrong.test", "farvfy.test", "farsec.test")
             for r in domain(d, [(10, "mx." + d, ELSEWHERE)], "3 1 1 " + ee_other)] +
            ["mx.bogusmx.test. A " + DEST, "_25._tcp.mx.bogusmx.test. TLSA 3 1 1 " + ee_dest])
        # The address record was put in by domain(): it is the bogus one.
        records.remove("mx.bogusaddr.test. A " + DEST)
        bogus = ["_25._tcp.mx.bogustlsa.test. TLSA 3 1 1 " + ee_dest,
                 "mx.bogusaddr.test. A " + DEST, "bogusmx.test. MX 10 mx.bogusmx.test."]
        insecure = ["mx A " + DEST, "_25._tcp.mx TLSA 3 1 1 " + ee_other,
                    "dane MX 10 mx.insecure.test.", "only MX 10 mx.insecure.test.",
                    "vfy MX 10 mx.insecure.test."]
        bed = net.dnssec(AUTH, RES, records=records, insecure_records=insecure, bogus=bogus)
        print("DS of test.: %s" % bed.ds)
        net.resolver(RES, options="trust-ad edns0 timeout:3 attempts:1")

        dest = net.dest(DEST, tls="starttls", cert=dest_cert, hostname="mx.dane.test")
        ta_dest = net.dest(TA, tls="starttls", cert=(ta_chain, ta_leaf[1]),
                           hostname="mx.ta.test")
        notls_dest = net.dest(NOTLS, tls=None, hostname="mx.notls.test")
        relay_dest = net.dest(RELAY, tls="starttls", cert=relay_cert, hostname="relay.dane.test")
        relay2_dest = net.dest(RELAY2, tls="starttls", cert=other, hostname="relay.dane.test")

        print("== 0. the test bed", flush=True)
        prove_bed(net, bed)

        policy = "".join("%s %s\n" % kv for kv in TABLE.items())
        mw = net.outbound(policy=policy, default_level="dane", tlsrpt="yes")

        def count(qtype, name):
            return bed.count(qtype, name)

        # 1. DANE-EE matches: delivered.
        print("== 1. dane.test: 3 1 1 of the destination's key", flush=True)
        q = {k: count(*k) for k in (("MX", "dane.test"), ("A", "mx.dane.test"),
                                    ("TLSA", "_25._tcp.mx.dane.test"))}
        outcheck.delivered(net, mw, dest, ["bob@dane.test"])
        for k, n in q.items():
            check_asked(bed, n, *k)
        check_dane_logged(mw, "dane.test", "mx.dane.test", "match-ee")
        mwtest.eq(mwtest.find_alerts(mw, domain="dane.test"), [], "alerts for dane.test")

        # 2. DANE-EE of another key: refused.
        print("== 2. wrongtlsa.test: 3 1 1 of another key", flush=True)
        n = len(mwtest.find_alerts(mw, domain="wrongtlsa.test"))
        outcheck.refused(net, mw, dest, "bob@wrongtlsa.test", "tlsa-invalid")
        check_alert(mw, "wrongtlsa.test", n, "dane (policy)", event="certificate_invalid")

        # 3. DANE-TA: the chain leads to the CA, the leaf names the MX host.
        print("== 3. ta.test and tawrongname.test: 2 0 1 of the CA", flush=True)
        outcheck.delivered(net, mw, ta_dest, ["bob@ta.test"], host=TA)
        check_dane_logged(mw, "ta.test", "mx.ta.test", "match-ta")
        n = len(mwtest.find_alerts(mw, domain="tawrongname.test"))
        outcheck.refused(net, mw, ta_dest, "bob@tawrongname.test", "certificate-host-mismatch",
                host=TA)
        check_alert(mw, "tawrongname.test", n, "dane (policy)", event="certificate_invalid",
                    host=TA)

        # 4. The unsigned child: no DANE (its TLSA, of another key, is not
        # believed); dane acts as encrypt, dane-only refuses.
        print("== 4. dane.insecure.test and only.insecure.test: unsigned", flush=True)
        nmx = count("MX", "dane.insecure.test")
        outcheck.delivered(net, mw, dest, ["bob@dane.insecure.test"])
        check_asked(bed, nmx, "MX", "dane.insecure.test")
        mwtest.eq(mwtest.find_alerts(mw, domain="dane.insecure.test"), [],
                  "alerts for dane.insecure.test")
        n = len(mwtest.find_alerts(mw, domain="only.insecure.test"))
        outcheck.refused(net, mw, dest, "bob@only.insecure.test", "dane-required")
        check_alert(mw, "only.insecure.test", n, "dane-only (policy)", event="dane_required")

        # 5. dane without TLSA, to a server without STARTTLS: as encrypt.
        print("== 5. notls.test: no STARTTLS", flush=True)
        outcheck.refused(net, mw, notls_dest, "bob@notls.test", "starttls-not-supported", host=NOTLS)

        # 6. Bogus answers: the TLSA record, the MX host's address.
        print("== 6. bogustlsa.test and bogusaddr.test: bogus records", flush=True)
        for d in ("bogustlsa.test", "bogusaddr.test"):
            n = len(mwtest.find_alerts(mw, domain=d))
            outcheck.refused(net, mw, dest, "bob@" + d, "dnssec-invalid")
            a = check_alert(mw, d, n, "dane (policy)", event="dnssec_invalid")
            mwtest.eq(a.get("severity"), "critical", "alert severity (%s)" % d)

        # 7. default_level = dane, for domains not in the table.
        print("== 7. dflt.test and dfltwrong.test: default_level dane", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@dflt.test"])
        check_dane_logged(mw, "dflt.test", "mx.dflt.test", "match-ee")
        n = len(mwtest.find_alerts(mw, domain="dfltwrong.test"))
        outcheck.refused(net, mw, dest, "bob@dfltwrong.test", "tlsa-invalid")
        check_alert(mw, "dfltwrong.test", n, "dane (default)", event="certificate_invalid")

        # 8. The destination is not a secure MX host of the domain.
        print("== 8. wrongmx.test and insecmx.test: not a secure MX here", flush=True)
        for d in ("wrongmx.test", "insecmx.test"):
            n = len(mwtest.find_alerts(mw, domain=d))
            outcheck.refused(net, mw, dest, "bob@" + d, "dane-required")
            check_alert(mw, d, n, "dane-only (policy)", event="dane_required")

        # 9. The MX host is chosen by the address; no MX; no usable TLSA.
        print("== 9. backup.test, nomx.test, notlsa.test, unusable.test", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@backup.test"])
        check_dane_logged(mw, "backup.test", "mx2.backup.test", "match-ee")
        outcheck.delivered(net, mw, dest, ["bob@nomx.test"])
        check_dane_logged(mw, "nomx.test", "nomx.test", "match-ee")
        outcheck.refused(net, mw, dest, "bob@notlsa.test", "dane-required")
        outcheck.refused(net, mw, dest, "bob@unusable.test", "dane-required")

        # 10. encrypt: no DANE lookup at all.
        print("== 10. plain.test: encrypt", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@plain.test"])
        mwtest.eq([x for x in bed.resolver.queries() if x[1].endswith("plain.test")], [],
                  "DNS queries for plain.test (level encrypt)")
        mwtest.eq(log_events(mw, "dane", "plain.test"), [], "event=dane lines for plain.test")

        # 11. verify: "hostname" is the MX host that DNS gives for the address
        # (validated or not, as in Postfix); with none, nexthop:dot-nexthop.
        print("== 11. vfy.test, vfy.insecure.test, vfyelse.test: verify", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@vfy.test"])
        t = outcheck.refused(net, mw, dest, "bob@vfy.insecure.test", "certificate-host-mismatch")
        mwtest.check("matches hostname" not in t["rcpt"][0][1] and
                     "hostname mx.insecure.test" in t["rcpt"][0][1],
                     "vfy.insecure.test: the reply does not name the MX host from DNS: %r"
                     % (t["rcpt"][0],))
        t = outcheck.refused(net, mw, dest, "bob@vfyelse.test", "certificate-host-mismatch")
        mwtest.check("match=nexthop:dot-nexthop" in t["rcpt"][0][1] and
                     "hostname (unknown)" in t["rcpt"][0][1],
                     "vfyelse.test: no MX host at the address, so nexthop:dot-nexthop: %r"
                     % (t["rcpt"][0],))

        # 12. MX hosts that are CNAMEs (RFC 7672 2.2.3): the target's TLSA
        # records first; the alias's own only when the target has none.
        print("== 12. cname.test, cname2.test, cname3.test: MX host aliases", flush=True)
        outcheck.delivered(net, mw, dest, ["bob@cname.test"])
        check_dane_logged(mw, "cname.test", "mx.cname.test", "match-ee")
        outcheck.delivered(net, mw, dest, ["bob@cname2.test"])
        check_dane_logged(mw, "cname2.test", "mx.cname2.test", "match-ee")
        n = len(mwtest.find_alerts(mw, domain="cname3.test"))
        outcheck.refused(net, mw, dest, "bob@cname3.test", "tlsa-invalid")
        check_alert(mw, "cname3.test", n, "dane (policy)", event="certificate_invalid")
        looked = [x.get("why") for x in log_events(mw, "dane_lookup")
                  if x.get("domain") in ("cname.test", "cname2.test", "cname3.test")]
        mwtest.eq(sorted(looked), ["1 TLSA records at _25._tcp.mx.cname2.test",
                                   "1 TLSA records at _25._tcp.real.cname.test",
                                   "1 TLSA records at _25._tcp.real.cname3.test"],
                  "the TLSA base domains looked at")

        # 13. SIGHUP drops the cached lookups: dane.test is looked up again.
        print("== 13. SIGHUP: the DANE cache is dropped", flush=True)
        nmx = count("MX", "dane.test")
        outcheck.delivered(net, mw, dest, ["carl@dane.test"])
        mwtest.eq(count("MX", "dane.test"), nmx, "MX queries for dane.test (cached)")
        os.kill(mw.pid, signal.SIGHUP)
        got = mwtest.wait_for(lambda: log_events(mw, "reload_dane"), 5)
        mwtest.eq([x.get("listener") for x in got or []], ["out"], "reload_dane lines")
        mwtest.check(int(got[0].get("entries", "0")) > 10,
                     "reload_dane entries: %r" % got[0])
        outcheck.delivered(net, mw, dest, ["dora@dane.test"])
        check_asked(bed, nmx, "MX", "dane.test")

        # TLS-RPT results (tlsrpt = yes): tlsa where the domain's level used
        # validated TLSA records (with those records and the MX host),
        # no-policy-found otherwise, with the verdict of each session.
        print("== TLS-RPT results", flush=True)
        results = {}
        for r in outcheck.tlsrpt_results(net):
            results.setdefault(r["policy-domain"], set()).add((r["policy-type"], r["result"]))
        want = {"dane.test": ("tlsa", "success"),
                "wrongtlsa.test": ("tlsa", "tlsa-invalid"),
                "ta.test": ("tlsa", "success"),
                "tawrongname.test": ("tlsa", "certificate-host-mismatch"),
                "dane.insecure.test": ("no-policy-found", "success"),
                "only.insecure.test": ("no-policy-found", "dane-required"),
                "notls.test": ("no-policy-found", "starttls-not-supported"),
                "bogustlsa.test": ("no-policy-found", "dnssec-invalid"),
                "dflt.test": ("tlsa", "success"),
                "plain.test": ("no-policy-found", "success")}
        mwtest.eq({d: results.get(d) for d in want}, {d: {w} for d, w in want.items()},
                  "TLS-RPT (type, result) of each domain")

        for d, tlsa, mx in (("dane.test", "3 1 1 " + ee_dest, "mx.dane.test"),
                            ("ta.test", "2 0 1 " + ta_ca, "mx.ta.test")):
            for r in outcheck.tlsrpt_results(net):
                if r["policy-domain"] == d:
                    mwtest.eq([r["policy-string"], r["mx-host"], r["receiving-mx-hostname"]],
                              [[tlsa], [mx], mx], "TLS-RPT policy of %s" % d)

        # 14. Through the relay host: where no MX host of the domain has the
        # destination, the relay host's TLSA records and name are what count.
        # A second mailward, told of the relay host; tlsrpt = yes makes it
        # look for the relay host at every level.
        print("== 14. far*.test and bogusmx.test through the relay host", flush=True)
        mw.stop()
        mw = net.outbound(policy=policy, default_level="dane", tlsrpt="yes",
                          relayhost="relay.dane.test", port=10026)
        # A delivery to an MX host is judged as one.
        outcheck.delivered(net, mw, dest, ["bob@dane.test"])
        check_dane_logged(mw, "dane.test", "mx.dane.test", "match-ee")
        outcheck.delivered(net, mw, dest, ["bob@plain.test"])
        mwtest.eq(log_events(mw, "relay_host"), [], "event=relay_host lines (to MX hosts)")
        outcheck.delivered(net, mw, relay_dest, ["bob@far.test"], host=RELAY)
        check_dane_logged(mw, "far.test", "relay.dane.test", "match-ee")
        mwtest.check([x for x in log_events(mw, "relay_host")
                      if x.get("host") == "relay.dane.test"],
                     "no event=relay_host line; log:\n%s" % mw.log()[-3000:])
        looked = [(x.get("relay_host"), x.get("why")) for x in log_events(mw, "dane_lookup")
                  if x.get("domain") == "far.test"]
        mwtest.eq(looked, [("relay.dane.test", "1 TLSA records at _25._tcp.relay.dane.test")],
                  "far.test's lookup (the relay host, its TLSA records)")
        n = len(mwtest.find_alerts(mw, domain="farwrong.test"))
        outcheck.refused(net, mw, relay2_dest, "bob@farwrong.test", "tlsa-invalid", host=RELAY2)
        check_alert(mw, "farwrong.test", n, "dane (policy)", event="certificate_invalid",
                    host=RELAY2)
        outcheck.delivered(net, mw, relay_dest, ["bob@farvfy.test"], host=RELAY)
        outcheck.delivered(net, mw, relay_dest, ["bob@farsec.test"], host=RELAY)
        outcheck.delivered(net, mw, relay_dest, ["bob@bogusmx.test"], host=RELAY)
        check_dane_logged(mw, "bogusmx.test", "relay.dane.test", "match-ee")
        n = len(mwtest.find_alerts(mw, domain="bogusmx.test"))
        t = outcheck.refused(net, mw, dest, "carl@bogusmx.test", "dnssec-invalid")
        mwtest.check("MX lookup for bogusmx.test" in t["rcpt"][0][1],
                     "bogusmx.test at %s: the reply names the failed MX lookup: %r"
                     % (DEST, t["rcpt"][0]))
        check_alert(mw, "bogusmx.test", n, "dane-only (policy)", event="dnssec_invalid")

        results = {}
        for r in outcheck.tlsrpt_results(net):
            results.setdefault(r["policy-domain"], set()).add((r["policy-type"], r["result"]))
        mwtest.eq(results, {"dane.test": {("tlsa", "success")},
                            "plain.test": {("no-policy-found", "success")},
                            "bogusmx.test": {("no-policy-found", "dnssec-invalid")}},
                  "TLS-RPT results with the relay host (none for sessions to it)")

        for d in (dest, ta_dest, notls_dest, relay_dest, relay2_dest):
            d.check_idle()
        mw.stop()
    print("ok (%.1f s)" % (time.monotonic() - start))


if __name__ == "__main__":
    main()
