#!/usr/bin/python3
"""scripts/tlsrpt-report: TLS-RPT reports (RFC 8460) from day files of
results, sent by HTTPS and by mail, retried, remembered and cleaned up.

It does not run mailward: the day files are written here in the format of
lib/tlsrpt.h (mailward's own tests check that it writes that format).

The test bed (network namespaces, documentation addresses only):

  192.0.2.53:53   dnsmasq: the _smtp._tls.<domain> TXT records and the
                  report hosts' addresses; the sender's resolv.conf names it.
                  servfail.test is forwarded to nsd on 127.0.0.1:5300 there,
                  which has the zone but could not load it: SERVFAIL
  192.0.2.44:443  the report hosts reports.<domain>: Python's http.server
                  over ssl (test CA), recording every POST
  192.0.2.25:25   the "local MTA": the aiosmtpd recorder (destserver.py)

tlsrpt-report runs in the sender namespace as nobody, with --now
2026-12-10T05:00:00Z, on a state directory owned by nobody holding:

  tlsrpt/2026-12-09.jsonl  results for https.test (several policies and
                           failures, one line with the domain in capitals
                           and a final dot), retry.test, gone.test,
                           mailto.test (tlsa and no-policy-found), both.test
                           (an IPv6 sending address written long-hand),
                           none.test, two.test, servfail.test, and four bad
                           lines (cut off, unknown policy-type, garbage, no
                           final newline)
  tlsrpt/2026-12-08.jsonl  mailto.test: a report of its own
  tlsrpt/2026-12-05.jsonl  https.test, five days old: given up unsent
  tlsrpt/2026-12-10.jsonl  today's: never touched
  tlsrpt/done/2026-10-30.* a done day 41 days old: deleted
  tlsrpt/done/2026-11-20.* a done day 20 days old, and a README: kept

The TLSRPT records: https.test, retry.test (503, then 200) and gone.test
(404) an https rua each; mailto.test a mailto rua in two strings, beside a
"v=spf1" and a "v=TLSRPTv10;" record that must be ignored; both.test a
mailto rua with two addresses and an https rua (and an unknown field), and
the MTA defers one of the two addresses (busy@both.test) once; two.test two
TLSRPT records (= none); none.test nothing (NXDOMAIN); servfail.test
SERVFAIL.

Runs, in this order:

  1. --dry-run: every report that run 2 then sends, with its rua, on stdout;
     nothing sent, not one file of the state directory changed; exit 1.
  2. The first run: the reports, decoded, are exactly the counts written
     (summaries and failure-details), with the RFC's members; https POSTs
     with Content-Type application/tlsrpt+gzip; mail through the MTA as
     multipart/report; report-type="tlsrpt" with a text part and the gzip
     attachment named submitter!domain!begin!end!id.json.gz, the headers
     TLS-Report-Domain, TLS-Report-Submitter and the RFC's Subject naming
     the report-id; a log line per report sent or failed, one for the bad
     lines and one for the SERVFAIL; nothing for none.test and two.test;
     retry.test's 503, busy@both.test's 450 and servfail.test wait (exit
     1); 2026-12-08 and the given-up 2026-12-05 move to done/, the
     41-day-old done day is deleted.
  3. Again: retry.test's POST is made again and answered 200 with the same
     report; both.test's mail goes again, to busy@both.test alone; nothing
     else is sent; servfail.test still waits (exit 1).
  4. servfail.test now has a record: its report is mailed; 2026-12-09 moves
     to done/ (exit 0).
  5. Again: nothing is sent, nothing changes (exit 0), and --dry-run prints
     no report.
  6. A late line for 2026-12-09 (a file that appears again once the day is
     done) is kept in done/2026-12-09.late.jsonl and not reported.
  7. Another late line while that file cannot be written: exit 2 with one
     line naming the file (no traceback), the line left in tlsrpt/; once
     it can be written, the next run keeps it there (exit 0).
Throughout: today's file is never changed and never reported. And bad usage
(--submitter that is not the domain of --contact) exits 2."""

import datetime
import email
import email.policy
import gzip
import hashlib
import json
import os
import pwd
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SCRIPT = os.path.join(mwtest.REPO, "scripts", "tlsrpt-report")
DNS, WEB, MTA = "192.0.2.53", "192.0.2.44", "192.0.2.25"
NSD_PORT = 5300
NOW = "2026-12-10T05:00:00Z"
D1, D2, OLD, TODAY = "2026-12-09", "2026-12-08", "2026-12-05", "2026-12-10"
ORG, CONTACT, SUBMITTER, FROM = "Sender Org", "tlsrpt@sender.test", "sender.test", \
    "noreply-tlsrpt@sender.test"
ME = "198.51.100.1"

STS_HTTPS = ["version: STSv1", "mode: enforce", "mx: mx1.https.test", "max_age: 86400"]
STS_BOTH = ["version: STSv1", "mode: testing", "mx: *.both.test", "max_age: 604800"]
STS_SERVFAIL = ["version: STSv1", "mode: enforce", "mx: mx.servfail.test", "max_age: 86400"]
TLSA = ["3 1 1 " + "ab" * 32]

RUA = {
    "https.test": ["https://reports.https.test/v1/tlsrpt"],
    "retry.test": ["https://reports.retry.test/tlsrpt"],
    "gone.test": ["https://reports.gone.test/missing"],
    "mailto.test": ["mailto:tlsrpt@mailto.test"],
    "both.test": ["mailto:reports@both.test%2Cbusy@both.test",
                  "https://reports.both.test/tlsrpt"],
    "servfail.test": ["mailto:tlsrpt@servfail.test"],
}


def line(domain, result, ptype="no-policy-found", pstr=(), mx=(), rip="192.0.2.10",
         mxname=None, info=None, sip=ME, day=D1, t="10:00:00"):
    obj = {"time": "%sT%sZ" % (day, t), "policy-type": ptype, "policy-domain": domain,
           "policy-string": list(pstr), "mx-host": list(mx), "result": result,
           "sending-mta-ip": sip, "receiving-ip": rip}
    if mxname is not None:
        obj["receiving-mx-hostname"] = mxname
    if info is not None:
        obj["failure-reason-code"] = info
    return json.dumps(obj) + "\n"


def d1_lines():
    https = dict(ptype="sts", pstr=STS_HTTPS, mx=["mx1.https.test"])
    out = [line("https.test", "success", mxname="mx1.https.test", **https)] * 3
    out += [line("HTTPS.Test.", "success", mxname="mx1.https.test", **https)]
    out += [line("https.test", "certificate-expired", mxname="mx1.https.test",
                 info="certificate expired on 2026-12-01T00:00:00Z", **https)]
    out += [line("https.test", "certificate-host-mismatch", rip="192.0.2.11", **https)] * 2
    out += ['{"time": "2026-12-09T11:00:00Z", "policy-type": "st\n']
    out += [line("retry.test", "success", rip="192.0.2.12", mxname="mx.retry.test")]
    out += [line("gone.test", "success", rip="192.0.2.14", mxname="mx.gone.test")]
    tlsa = dict(ptype="tlsa", pstr=TLSA, mx=["mx.mailto.test"], rip="192.0.2.13",
                mxname="mx.mailto.test")
    out += [line("mailto.test", "success", **tlsa)] * 2
    out += [line("mailto.test", "tlsa-invalid", info="no TLSA record matched", **tlsa)]
    out += [line("mailto.test", "dane", ptype="dane")]          # a later format?
    out += [line("mailto.test", "starttls-not-supported", rip="192.0.2.13",
                 mxname="mx.mailto.test")]
    out += [line("mailto.test", "success", rip="192.0.2.13", mxname="mx.mailto.test")]
    both = dict(ptype="sts", pstr=STS_BOTH, mx=["*.both.test"], mxname="mx2.both.test")
    out += [line("both.test", "success", **both)]
    out += ["\x00\x00\x00\x00\n"]
    out += [line("both.test", "starttls-not-supported", **both)]
    out += [line("both.test", "starttls-not-supported", sip="2001:DB8:0:0::1",
                 rip="2001:db8::25", **both)]
    out += [line("none.test", "success"), line("two.test", "success")]
    sf = dict(ptype="sts", pstr=STS_SERVFAIL, mx=["mx.servfail.test"],
              mxname="mx.servfail.test")
    out += [line("servfail.test", "success", **sf)] * 2
    out += [line("servfail.test", "validation-failure",
                 info="handshake failed: bad record mac", **sf)]
    out += ['{"time": "2026-12-09T23:59:59Z", "policy-type": "sts", "policy-do']
    return "".join(out)


BAD_LINES_D1 = 4


def policy(ptype, domain, pstr, mx, ok, failed, details=None):
    p = {"policy": {"policy-type": ptype, "policy-string": pstr, "policy-domain": domain,
                    "mx-host": mx},
         "summary": {"total-successful-session-count": ok,
                     "total-failure-session-count": failed}}
    if details is not None:
        p["failure-details"] = details
    return p


def detail(result, rip, count, mx=None, info=None, sip=ME):
    d = {"result-type": result, "sending-mta-ip": sip, "receiving-ip": rip,
         "failed-session-count": count}
    if mx is not None:
        d["receiving-mx-hostname"] = mx
    if info is not None:
        d["failure-reason-code"] = info
    return d


# policy domain -> the "policies" its D1 report must have (in any order).
EXPECTED_D1 = {
    "https.test": [policy("sts", "https.test", STS_HTTPS, ["mx1.https.test"], 4, 3, [
        detail("certificate-expired", "192.0.2.10", 1, "mx1.https.test",
               "certificate expired on 2026-12-01T00:00:00Z"),
        detail("certificate-host-mismatch", "192.0.2.11", 2)])],
    "retry.test": [policy("no-policy-found", "retry.test", [], [], 1, 0)],
    "gone.test": [policy("no-policy-found", "gone.test", [], [], 1, 0)],
    "mailto.test": [
        policy("tlsa", "mailto.test", TLSA, ["mx.mailto.test"], 2, 1, [
            detail("tlsa-invalid", "192.0.2.13", 1, "mx.mailto.test", "no TLSA record matched")]),
        policy("no-policy-found", "mailto.test", [], [], 1, 1, [
            detail("starttls-not-supported", "192.0.2.13", 1, "mx.mailto.test")])],
    "both.test": [policy("sts", "both.test", STS_BOTH, ["*.both.test"], 1, 2, [
        detail("starttls-not-supported", "192.0.2.10", 1, "mx2.both.test"),
        detail("starttls-not-supported", "2001:db8::25", 1, "mx2.both.test",
               sip="2001:db8::1")])],
    "servfail.test": [policy("sts", "servfail.test", STS_SERVFAIL, ["mx.servfail.test"], 2, 1, [
        detail("validation-failure", "192.0.2.10", 1, "mx.servfail.test",
               "handshake failed: bad record mac")])],
}
EXPECTED_D2 = {"mailto.test": [policy("tlsa", "mailto.test", TLSA, ["mx.mailto.test"], 1, 0)]}


# -- helpers ---------------------------------------------------------------------------
def start_nsd(env, net):
    """nsd (real software) in DNS's namespace on 127.0.0.1:NSD_PORT with the
    zone servfail.test. configured but its file missing: it answers
    SERVFAIL for every name in it."""
    d = env.path("nsd")
    os.makedirs(d)
    conf = mwtest.nsd_config(d, "127.0.0.1", NSD_PORT, [
        ("servfail.test.", os.path.join(d, "servfail.test.zone-that-is-not-there"))])
    exe = shutil.which("nsd") or "/usr/sbin/nsd"
    if not os.path.exists(exe):
        mwtest.skip("nsd is not installed")
    ns = net.ns_of(DNS)
    proc = net.spawn(ns, [exe, "-d", "-c", conf], log=os.path.join(d, "nsd.log"))
    mwtest.check(net.listening(ns, NSD_PORT, timeout=10, pid=proc.pid) and proc.poll() is None,
                 "nsd did not start: %s" % open(os.path.join(d, "nsd.log")).read())
    return proc


def start_dns(env, net, servfail):
    """dnsmasq at DNS:53 with the test's TLSRPT records; servfail.test is
    forwarded to nsd (SERVFAIL) while servfail, else it has a record."""
    # Records with a comma in a string, or of two strings, need a
    # configuration file (on the command line a comma starts a new string).
    extra = env.path("dnsmasq-extra.conf")
    with open(extra, "w") as f:
        f.write('txt-record=_smtp._tls.mailto.test,"v=TLSRPTv1; rua=mailto:tls","rpt@mailto.test"\n'
                'txt-record=_smtp._tls.both.test,"v=TLSRPTv1; rua=mailto:reports@both.test%2C'
                'busy@both.test ,'
                ' https://reports.both.test/tlsrpt; ext=yes;"\n')
    txt = {
        "_smtp._tls.https.test": "v=TLSRPTv1;rua=https://reports.https.test/v1/tlsrpt",
        "_smtp._tls.retry.test": "v=TLSRPTv1; rua=https://reports.retry.test/tlsrpt",
        "_smtp._tls.gone.test": "v=TLSRPTv1; rua=https://reports.gone.test/missing",
        "_smtp._tls.mailto.test": ["v=spf1 -all", "v=TLSRPTv10; rua=mailto:wrong@mailto.test"],
        "_smtp._tls.two.test": ["v=TLSRPTv1; rua=mailto:a@two.test",
                                "v=TLSRPTv1; rua=mailto:b@two.test"],
    }
    options = ["--local=/test/", "--conf-file=" + extra]
    if servfail:
        options.append("--server=/servfail.test/127.0.0.1#%d" % NSD_PORT)
    else:
        txt["_smtp._tls.servfail.test"] = "v=TLSRPTv1; rua=mailto:tlsrpt@servfail.test"
    hosts = {"reports.%s" % d: WEB for d in ("https.test", "retry.test", "gone.test",
                                              "both.test")}
    return mwtest.DnsServer(net, net.ns_of(DNS), DNS, txt, hosts, options=options)


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def write_file(path, text):
    """A file of mailward's user (nobody here)."""
    with open(path, "w", newline="") as f:
        f.write(text)
    os.chmod(path, 0o644)
    os.chown(path, *nobody())


def snapshot(top):
    """{relative path: (sha256 of the content, mtime_ns)} of every file under top."""
    out = {}
    for root, dirs, files in os.walk(top):
        for n in files:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, top)] = (h, os.stat(p).st_mtime_ns)
    return out


def run(net, state, *extra, expect=None):
    """tlsrpt-report in the sender namespace as nobody; returns (exit
    status, stdout, stderr lines as key=value dicts, stderr)."""
    argv = ["runuser", "-u", "nobody", "--", "/usr/bin/python3", SCRIPT,
            "--state-dir", state, "--organization", ORG, "--contact", CONTACT,
            "--submitter", SUBMITTER, "--from", FROM, "--smtp", "%s:25" % MTA,
            "--cafile", os.path.join(net.env.certs, "ca.pem"), "--timeout", "5",
            "--now", NOW] + list(extra)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    r = net.run(net.sender, argv, env=env, timeout=120)
    print("tlsrpt-report %s: exit %d\nstdout: %s\nstderr:\n%s"
          % (" ".join(extra), r.returncode, r.stdout[:3000], r.stderr), flush=True)
    logs = []
    for ln in r.stderr.splitlines():
        mwtest.check(ln.startswith("tlsrpt-report: "), "stderr line without the program's "
                     "name: %r" % ln)
        logs.append({k: v[1:-1] if v.startswith('"') else v
                     for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', ln)})
    if expect is not None:
        mwtest.eq(r.returncode, expect, "exit status of tlsrpt-report %s" % " ".join(extra))
    return r.returncode, r.stdout, logs, r.stderr


def events(logs, event):
    return [x for x in logs if x.get("event") == event]


def sorted_policies(policies):
    """Policies with failure-details in a fixed order, for comparing."""
    out = []
    for p in policies:
        p = dict(p)
        if "failure-details" in p:
            p["failure-details"] = sorted(p["failure-details"],
                                          key=lambda d: json.dumps(d, sort_keys=True))
        out.append(p)
    return sorted(out, key=lambda p: json.dumps(p, sort_keys=True))


def check_report(report, day, domain, expected, what):
    """The report's members (RFC 8460 4.4) and its policies exactly as
    expected (in any order). Returns its report-id."""
    mwtest.eq(sorted(report), sorted(["organization-name", "date-range", "contact-info",
                                      "report-id", "policies"]), "%s: members" % what)
    mwtest.eq(report["organization-name"], ORG, "%s: organization-name" % what)
    mwtest.eq(report["contact-info"], CONTACT, "%s: contact-info" % what)
    mwtest.eq(report["date-range"], {"start-datetime": day + "T00:00:00Z",
                                     "end-datetime": day + "T23:59:59Z"},
              "%s: date-range" % what)
    rid = report["report-id"]
    mwtest.check(isinstance(rid, str) and re.fullmatch(r"[\w.!#$%&'*+/=?^`{|}~-]+@"
                                                        + re.escape(SUBMITTER), rid),
                 "%s: report-id %r is not id-left@submitter" % (what, rid))
    mwtest.eq(sorted_policies(report["policies"]), sorted_policies(expected),
              "%s: policies" % what)
    return rid


def gunzip_json(data, what):
    mwtest.check(data[:2] == b"\x1f\x8b", "%s: not gzip: %r" % (what, data[:20]))
    return json.loads(gzip.decompress(data).decode("utf-8"))


def check_mail(m, day, domain, rcpts, expected, to=None):
    """One report message as the MTA got it (RFC 8460 5.3): envelope (rcpts),
    headers (To: every address of the URI, to, by default rcpts), MIME
    structure, file name; the report inside. Returns the report."""
    what = "mail for %s (%s)" % (domain, day)
    mwtest.eq([m.mail_from, sorted(m.rcpt_tos)], [FROM, sorted(rcpts)], "%s: envelope" % what)
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    mwtest.eq(msg["From"], FROM, "%s: From" % what)
    mwtest.eq(sorted(a.strip() for a in msg["To"].split(",")), sorted(to or rcpts),
              "%s: To" % what)
    mwtest.eq(msg["TLS-Report-Domain"], domain, "%s: TLS-Report-Domain" % what)
    mwtest.eq(msg["TLS-Report-Submitter"], SUBMITTER, "%s: TLS-Report-Submitter" % what)
    mwtest.check(msg["Message-ID"] and msg["Date"], "%s: no Message-ID or Date" % what)
    mwtest.eq(msg["MIME-Version"], "1.0", "%s: MIME-Version" % what)
    mwtest.eq(msg.get_content_type(), "multipart/report", "%s: content type" % what)
    mwtest.eq(msg.get_param("report-type"), "tlsrpt", "%s: report-type" % what)
    parts = list(msg.iter_parts())
    mwtest.eq([p.get_content_type() for p in parts], ["text/plain", "application/tlsrpt+gzip"],
              "%s: parts" % what)
    mwtest.check(domain in parts[0].get_content(), "%s: the text part does not name the "
                 "domain: %r" % (what, parts[0].get_content()))
    att = parts[1]
    mwtest.eq(att.get_content_disposition(), "attachment", "%s: disposition" % what)
    begin = int(datetime.datetime.fromisoformat(day + "T00:00:00+00:00").timestamp())
    fn = att.get_filename()
    fm = re.fullmatch(r"%s!%s!%d!%d!([A-Za-z0-9]+)\.json\.gz" % (
        re.escape(SUBMITTER), re.escape(domain), begin, begin + 86399), fn or "")
    mwtest.check(fm, "%s: filename %r is not submitter!domain!%d!%d!id.json.gz"
                 % (what, fn, begin, begin + 86399))
    mwtest.check(b'filename="%s"' % fn.encode() in m.data, "%s: the file name is not one "
                 "plain quoted string in the message" % what)
    report = gunzip_json(att.get_content(), what)
    rid = check_report(report, day, domain, expected, what)
    mwtest.eq(" ".join(msg["Subject"].split()),
              "Report Domain: %s Submitter: %s Report-ID: <%s>" % (domain, SUBMITTER, rid),
              "%s: Subject" % what)
    return report


def check_post(p, domain, expected, what):
    mwtest.eq(p["ctype"], "application/tlsrpt+gzip", "%s: Content-Type" % what)
    report = gunzip_json(p["body"], what)
    check_report(report, D1, domain, expected, what)
    return report


def sent_lines(logs):
    return sorted((x.get("day"), x.get("domain"), x.get("rua"))
                  for x in events(logs, "report_sent"))


def main():
    with mwtest.Env("tlsrpt_report") as env:
        net = env.netns(hosts=(DNS, WEB, MTA))
        start_nsd(env, net)
        dns = start_dns(env, net, servfail=True)
        net.resolver(DNS)
        r = net.run(net.sender, ["drill", "_smtp._tls.servfail.test", "TXT"])
        mwtest.check("rcode: SERVFAIL" in r.stdout, "servfail.test does not give SERVFAIL in "
                     "the sender: %s\ndnsmasq: %s" % (r.stdout, dns.output()))
        sites = ["reports.%s" % d for d in ("https.test", "retry.test", "gone.test", "both.test")]
        web = net.https(WEB, net.cert(sites[0], sans=sites), {},
                        post_status={"reports.retry.test": [503, 200],
                                     "reports.gone.test": [404]})
        # busy@both.test, one of both.test's two report addresses, is
        # deferred the first time: the report goes to reports@both.test,
        # and to busy@both.test (only) by the next run.
        mta = net.dest(MTA, tls=None, hostname="mta.sender.test",
                       defer_once=["busy@both.test"])

        # The state directory, as mailward's user (nobody here) has it.
        state = env.path("state")
        tdir = os.path.join(state, "tlsrpt")
        done = os.path.join(tdir, "done")
        for d in (state, tdir, done):
            os.makedirs(d, exist_ok=True)
            os.chown(d, *nobody())
            os.chmod(d, 0o750)
        write_file(os.path.join(tdir, D1 + ".jsonl"), d1_lines())
        write_file(os.path.join(tdir, D2 + ".jsonl"), line(
            "mailto.test", "success", ptype="tlsa", pstr=TLSA, mx=["mx.mailto.test"],
            rip="192.0.2.13", mxname="mx.mailto.test", day=D2))
        write_file(os.path.join(tdir, OLD + ".jsonl"), line("https.test", "success", day=OLD))
        today_path = os.path.join(tdir, TODAY + ".jsonl")
        write_file(today_path, line("https.test", "success", day=TODAY) +
                   line("mailto.test", "success", day=TODAY))
        for day in ("2026-10-30", "2026-11-20"):
            write_file(os.path.join(done, day + ".jsonl"), line("https.test", "success", day=day))
            write_file(os.path.join(done, day + ".state.json"), "{}\n")
        write_file(os.path.join(done, "README"), "not tlsrpt-report's\n")
        today_before = snapshot(tdir)[TODAY + ".jsonl"]

        def check_today():
            mwtest.eq(snapshot(tdir).get(TODAY + ".jsonl"), today_before, "today's file")
            mwtest.check(not [n for n in os.listdir(tdir) + os.listdir(done)
                              if n.startswith(TODAY) and n != TODAY + ".jsonl"],
                         "files for today: %r" % (os.listdir(tdir) + os.listdir(done)))

        # 0. Bad usage.
        rc, _, _, err = run(net, state, "--submitter", "other.test")
        mwtest.eq(rc, 2, "exit status with --submitter not the domain of --contact")
        mwtest.check("RFC 8460" in err, "the usage error does not say why: %r" % err)

        # 1. --dry-run: the reports and where they would go; nothing else.
        print("== 1. --dry-run", flush=True)
        before = snapshot(state)
        rc, out, logs, _ = run(net, state, "--dry-run", expect=1)
        mwtest.eq(snapshot(state), before, "the state directory after --dry-run")
        mwtest.eq([web.posts, mta.messages], [[], []], "POSTs and mail after --dry-run")
        printed, dec, i = [], json.JSONDecoder(), 0
        while out[i:].strip():
            while out[i].isspace():
                i += 1
            obj, i = dec.raw_decode(out, i)
            printed.append(obj)
        got = sorted((p["day"], p["policy-domain"], tuple(p["send-to"])) for p in printed)
        mwtest.eq(got, sorted([(D1, d, tuple(u)) for d, u in RUA.items() if d != "servfail.test"]
                              + [(D2, "mailto.test", tuple(RUA["mailto.test"]))]),
                  "reports printed by --dry-run (day, domain, rua)")
        for p in printed:
            exp = (EXPECTED_D1 if p["day"] == D1 else EXPECTED_D2)[p["policy-domain"]]
            check_report(p["report"], p["day"], p["policy-domain"], exp,
                         "--dry-run report for %s" % p["policy-domain"])
        mwtest.eq(len(events(logs, "lookup_failed")), 1, "lookup_failed lines of --dry-run")

        # 2. The first run.
        print("== 2. the first run", flush=True)
        rc, _, logs, _ = run(net, state, expect=1)
        bad = events(logs, "bad_lines")
        mwtest.eq([(b.get("day"), b.get("count")) for b in bad], [(D1, str(BAD_LINES_D1))],
                  "bad_lines lines (day, count)")
        want_sent = sorted([(D1, d, u) for d, us in RUA.items() for u in us
                            if d not in ("servfail.test", "retry.test", "gone.test")
                            and u != RUA["both.test"][0]]
                           + [(D2, "mailto.test", RUA["mailto.test"][0])])
        mwtest.eq(sent_lines(logs), want_sent, "report_sent lines (day, domain, rua)")
        failed = sorted((x.get("domain"), x.get("action")) for x in events(logs, "report_failed"))
        mwtest.eq(failed, [("both.test", "retry"), ("gone.test", "dropped"),
                           ("retry.test", "retry")], "report_failed lines (domain, action)")
        busy = [x for x in events(logs, "report_failed") if x.get("domain") == "both.test"]
        mwtest.check(re.search(r"deferred: busy@both\.test 450 .*accepted by .* for "
                               r"reports@both\.test$", busy[0].get("reason", "")),
                     "both.test's report_failed line does not say who had it and who "
                     "did not: %r" % busy[0])
        lf = events(logs, "lookup_failed")
        mwtest.eq([(x.get("domain"), x.get("action")) for x in lf], [("servfail.test", "retry")],
                  "lookup_failed lines")
        mwtest.check("SERVFAIL" in lf[0].get("reason", ""), "lookup_failed reason: %r" % lf[0])
        mwtest.eq([(x.get("day"), x.get("domain")) for x in events(logs, "given_up")],
                  [(OLD, "https.test")], "given_up lines")
        for x in logs:
            mwtest.check(x.get("domain") not in ("none.test", "two.test"),
                         "a log line for a domain without a (single) record: %r" % x)

        # The POSTs: https.test and both.test delivered, retry.test 503, gone.test 404.
        posts = {p["host"]: p for p in web.posts}
        mwtest.eq(sorted((p["host"], p["path"], p["status"]) for p in web.posts),
                  [("reports.both.test", "/tlsrpt", 200), ("reports.gone.test", "/missing", 404),
                   ("reports.https.test", "/v1/tlsrpt", 200),
                   ("reports.retry.test", "/tlsrpt", 503)], "POSTs of the first run")
        mwtest.eq([[r for r in web.requests if r["method"] != "POST"], web.errors], [[], []],
                  "other requests and failed connections")
        reports = {}
        for host in ("https.test", "both.test", "retry.test", "gone.test"):
            reports[host] = check_post(posts["reports." + host], host, EXPECTED_D1[host],
                                       "POST for %s" % host)

        # The mail: mailto.test twice (D1, D2) and both.test.
        msgs = mta.wait_messages(3, 10)
        mta.wait_idle()
        msgs = mta.messages
        mwtest.eq(len(msgs), 3, "messages at the MTA after the first run")
        by = {}
        for m in msgs:
            e = email.message_from_bytes(m.data, policy=email.policy.default)
            rep = gunzip_json(list(e.iter_parts())[1].get_content(), "mail")
            by[(rep["date-range"]["start-datetime"][:10], e["TLS-Report-Domain"])] = m
        mwtest.eq(sorted(by), sorted([(D1, "mailto.test"), (D2, "mailto.test"),
                                      (D1, "both.test")]), "mail (day, domain)")
        check_mail(by[(D1, "mailto.test")], D1, "mailto.test", ["tlsrpt@mailto.test"],
                   EXPECTED_D1["mailto.test"])
        check_mail(by[(D2, "mailto.test")], D2, "mailto.test", ["tlsrpt@mailto.test"],
                   EXPECTED_D2["mailto.test"])
        both_to = ["reports@both.test", "busy@both.test"]
        rb = check_mail(by[(D1, "both.test")], D1, "both.test", ["reports@both.test"],
                        EXPECTED_D1["both.test"], to=both_to)
        mwtest.eq(rb, reports["both.test"], "both.test: the mailed and the POSTed report")
        mwtest.check(by[(D1, "mailto.test")].data.count(b"TLS-Required: No") == 1,
                     "mailto.test's mail has no TLS-Required: No")
        for (d, dom), m in by.items():
            sub = [x for x in events(logs, "report_sent") + busy
                   if (x["day"], x["domain"]) == (d, dom) and x["rua"].startswith("mailto:")]
            mwtest.check(sub and sub[0]["report_id"] in m.data.decode(),
                         "log line for %s %s without its report_id" % (d, dom))

        # Files: D2 and the given-up OLD done, D1 waits, the old done day gone.
        mwtest.eq(sorted(os.listdir(tdir)), sorted([".tlsrpt-report.lock", D1 + ".jsonl",
                                                     D1 + ".state.json", TODAY + ".jsonl",
                                                     "done"]), "files in tlsrpt/ after run 1")
        mwtest.eq(sorted(os.listdir(done)), sorted(["README", "2026-11-20.jsonl",
                                                    "2026-11-20.state.json"] +
                                                   [d + s for d in (D2, OLD)
                                                    for s in (".jsonl", ".state.json")]),
                  "files in done/ after run 1")
        with open(os.path.join(done, OLD + ".state.json")) as f:
            old = json.load(f)
        mwtest.eq(old["domains"], {"https.test": {"state": "given-up", "reason": "day too old"}},
                  "the given-up day's state")
        check_today()

        # 3. Again: retry.test's POST is retried and delivered, both.test's
        # mail goes to busy@both.test alone; nothing else.
        print("== 3. the second run", flush=True)
        rc, _, logs, _ = run(net, state, expect=1)
        mwtest.eq(sent_lines(logs), sorted([(D1, "retry.test", RUA["retry.test"][0]),
                                            (D1, "both.test", RUA["both.test"][0])]),
                  "report_sent lines of the second run")
        mwtest.eq(events(logs, "report_failed"), [], "report_failed lines of the second run")
        mwtest.eq([x.get("domain") for x in events(logs, "lookup_failed")], ["servfail.test"],
                  "lookup_failed lines of the second run")
        mwtest.eq([(p["host"], p["status"]) for p in web.posts[4:]],
                  [("reports.retry.test", 200)], "POSTs of the second run")
        again = check_post(web.posts[4], "retry.test", EXPECTED_D1["retry.test"],
                           "retried POST for retry.test")
        mwtest.eq(again, reports["retry.test"], "the retried report (same report-id and all)")
        mwtest.eq(web.posts[4]["body"], posts["reports.retry.test"]["body"],
                  "the retried POST's body, byte for byte")
        msgs = mta.wait_messages(4, 10)
        mta.wait_idle()
        mwtest.eq(len(mta.messages), 4, "messages at the MTA after the second run")
        rb2 = check_mail(mta.messages[3], D1, "both.test", ["busy@both.test"],
                         EXPECTED_D1["both.test"], to=both_to)
        mwtest.eq(rb2, rb, "both.test: the report mailed again to busy@both.test (same "
                  "report-id and all)")
        check_today()

        # 4. servfail.test now answers: its report is mailed, D1 is done.
        print("== 4. servfail.test has a record now", flush=True)
        dns.stop()
        dns = start_dns(env, net, servfail=False)
        rc, _, logs, _ = run(net, state, expect=0)
        mwtest.eq(sent_lines(logs), [(D1, "servfail.test", RUA["servfail.test"][0])],
                  "report_sent lines of the third run")
        mwtest.eq([x for x in logs if x.get("event") != "report_sent"], [],
                  "other log lines of the third run")
        msgs = mta.wait_messages(5, 10)
        mwtest.eq(len(msgs), 5, "messages at the MTA after the third run")
        check_mail(msgs[4], D1, "servfail.test", ["tlsrpt@servfail.test"],
                   EXPECTED_D1["servfail.test"])
        mwtest.eq(len(web.posts), 5, "POSTs after the third run")
        mwtest.eq(sorted(os.listdir(tdir)), sorted([".tlsrpt-report.lock", TODAY + ".jsonl",
                                                     "done"]), "files in tlsrpt/ after run 3")
        mwtest.check(os.path.exists(os.path.join(done, D1 + ".state.json")) and
                     os.path.exists(os.path.join(done, D1 + ".jsonl")), "D1 not in done/")
        check_today()

        # 5. Nothing left: nothing sent, nothing changed.
        print("== 5. nothing left", flush=True)
        before = snapshot(state)
        rc, _, logs, _ = run(net, state, expect=0)
        mwtest.eq(logs, [], "log lines of a run with nothing to do")
        rc, out, logs, _ = run(net, state, "--dry-run", expect=0)
        mwtest.eq([out.strip(), logs], ["", []], "--dry-run output with nothing to do")
        mwtest.eq(snapshot(state), before, "the state directory after runs with nothing to do")
        mta.wait_idle()
        mwtest.eq([len(web.posts), len(mta.messages)], [5, 5], "POSTs and mail in all")

        # 6. A line for D1 written late: kept, not reported.
        print("== 6. a late line for a done day", flush=True)
        late = line("https.test", "success", day=D1, t="23:59:59")
        write_file(os.path.join(tdir, D1 + ".jsonl"), late)
        rc, _, logs, _ = run(net, state, expect=0)
        mwtest.eq([x.get("event") for x in logs], ["late_lines"], "log lines with a late line")
        with open(os.path.join(done, D1 + ".late.jsonl")) as f:
            mwtest.eq(f.read(), late, "done/%s.late.jsonl" % D1)
        mwtest.check(not os.path.exists(os.path.join(tdir, D1 + ".jsonl")),
                     "the late file is still in tlsrpt/")
        mta.wait_idle()
        mwtest.eq([len(web.posts), len(mta.messages)], [5, 5], "POSTs and mail after the late "
                  "line")
        check_today()

        # 7. The late file cannot be written: a broken state directory (2),
        # said on one line, and the late line is kept for the next run.
        print("== 7. a late line that cannot be kept yet", flush=True)
        kept = os.path.join(done, D1 + ".late.jsonl")
        late2 = line("https.test", "success", day=D1, t="23:59:58")
        write_file(os.path.join(tdir, D1 + ".jsonl"), late2)
        os.chmod(kept, 0o444)
        rc, _, logs, err = run(net, state, expect=2)
        mwtest.check("Traceback" not in err and kept in err and len(err.splitlines()) == 1,
                     "stderr of a run that cannot write %s: %r" % (kept, err))
        mwtest.check(os.path.exists(os.path.join(tdir, D1 + ".jsonl")),
                     "the late line was not left in tlsrpt/")
        os.chmod(kept, 0o644)
        rc, _, logs, _ = run(net, state, expect=0)
        mwtest.eq([x.get("event") for x in logs], ["late_lines"], "log lines once writable")
        with open(kept) as f:
            mwtest.eq(f.read(), late + late2, "done/%s.late.jsonl at the end" % D1)
        mta.wait_idle()
        mwtest.eq([len(web.posts), len(mta.messages)], [5, 5], "POSTs and mail in the end")
        web.stop()
    print("ok")


if __name__ == "__main__":
    main()
