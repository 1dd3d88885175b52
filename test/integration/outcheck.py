"""Shared steps of the outbound tests t_out_*.py (not a test itself)."""

import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SERVER = "192.0.2.10:25"
FROM = "alice@sender.test"


def message(subject):
    return (b"From: alice@sender.test\r\nSubject: %s\r\n\r\nthis must not leak\r\n"
            % subject.encode())


# key=value pairs of a log line; values may be "quoted".
LOG_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def log_kv(line):
    """A log line's key=value pairs as a dict (quotes removed)."""
    return {k: v[1:-1] if v.startswith('"') else v for k, v in LOG_KV.findall(line)}


def log_events(mw, event, domain=None):
    """mailward's log lines with event=event (and domain=domain) as dicts of
    their key=value pairs."""
    out = []
    for line in mw.log().splitlines():
        kv = log_kv(line)
        if kv.get("event") == event and (domain is None or kv.get("domain") == domain):
            out.append(kv)
    return out


def tlsrpt_results(net):
    """The TLS-RPT result lines (tlsrpt = yes) that mailward wrote to
    state_dir/tlsrpt/DAY.jsonl, every day's file, as dicts; each line must
    be one JSON object ending in a newline, with our address as
    sending-mta-ip and the day of its file in its time."""
    out = []
    for path in sorted(glob.glob(os.path.join(net.state_dir, "tlsrpt", "*.jsonl"))):
        day = os.path.basename(path)[:-len(".jsonl")]
        with open(path) as f:
            text = f.read()
        mwtest.check(text.endswith("\n"), "%s does not end with a newline" % path)
        for line in text.splitlines():
            r = json.loads(line)
            mwtest.check(r["time"].startswith(day + "T") and r["time"].endswith("Z"),
                         "a line of %s has the time %r" % (path, r["time"]))
            mwtest.eq(r["sending-mta-ip"], net.SENDER_ADDR, "sending-mta-ip in %s" % path)
            out.append(r)
    return out


def delivered(net, mw, dest, rcpts, subject=None, host="192.0.2.10"):
    """One transaction through host that must deliver to every rcpt: the
    destination gets the message once more, over TLS, for rcpts."""
    subject = subject or "to %s" % ", ".join(rcpts)
    before = len(dest.messages)
    msg = message(subject)
    t = one_transaction(net, rcpts, msg, host=host)
    mwtest.eq([t["mail"][0]] + [r[0] for r in t["rcpt"]] + [t["data"][0]],
              [250] * (len(rcpts) + 2),
              "%s: MAIL, RCPT, end of data; log:\n%s" % (subject, mw.log()[-3000:]))
    msgs = dest.wait_messages(before + 1, 10)
    mwtest.eq(len(msgs), before + 1, "%s: messages at the destination" % subject)
    m = msgs[-1]
    mwtest.eq([m.rcpt_tos, m.data, m.tls], [rcpts, msg, True],
              "%s: recipients, bytes, TLS at the destination" % subject)
    return t


def refused(net, mw, dest, rcpt, result_type, host="192.0.2.10"):
    """One transaction through host with one recipient that must be refused:
    MAIL 250 from mailward, RCPT 451 4.7.5 naming result_type and the
    domain, DATA 554, no envelope command at dest (which may have had
    sessions before) and no message."""
    domain = rcpt.split("@")[1]
    dest.wait_idle()
    ncmds, nmsgs = len(dest.commands), len(dest.messages)
    t = one_transaction(net, [rcpt], message("to %s" % rcpt), host=host)
    mwtest.eq(t["mail"], (250, "2.1.0 Ok"), "MAIL held and answered by mailward (%s)" % rcpt)
    if t["rcpt"][0][0] != 451:
        print("mailward's log:\n%s" % mw.log()[-3000:])
    mwtest.check_deferred(t["rcpt"][0], result_type, "RCPT %s" % rcpt)
    mwtest.check(domain in t["rcpt"][0][1], "RCPT reply %r does not name %s"
                 % (t["rcpt"][0], domain))
    mwtest.eq(t["data"], (554, "5.5.1 Error: no valid recipients"), "DATA (%s)" % rcpt)
    dest.check_idle()
    new = dest.command_strings()[ncmds:]
    print("destination saw (%s): %r" % (rcpt, new))
    mwtest.eq([c for c in new if c.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA", "BDAT")],
              [], "envelope commands at the destination for %s" % rcpt)
    mwtest.eq(len(dest.messages), nmsgs, "messages at the destination after %s" % rcpt)
    return t


def one_transaction(net, rcpts, msg, host="192.0.2.10", mail_from=FROM):
    """Connect from the sender, EHLO, one transaction, QUIT."""
    s = net.smtp(host)
    code, caps = s.ehlo()
    mwtest.eq(code, 250, "EHLO")
    t = mwtest.transaction(s, mail_from, rcpts, msg)
    try:
        s.quit()
    except Exception as e:             # noqa: BLE001 - the reply to QUIT does not matter
        print("QUIT: %r" % e)
    return t


def expect_refused(net, mw, dest, rcpt, result_type, event, expected):
    """A session with one recipient that must be refused: MAIL answered by
    mailward, RCPT 451 4.7.5 naming result_type, DATA 554, nothing of the
    envelope at the destination, one alert `event` for the domain with
    server, expected and observed."""
    domain = rcpt.split("@")[1]
    before = len(mwtest.find_alerts(mw, event=event, domain=domain))
    t = one_transaction(net, [rcpt], message("to %s" % rcpt))
    mwtest.eq(t["mail"], (250, "2.1.0 Ok"), "MAIL held and answered by mailward (%s)" % rcpt)
    mwtest.check_deferred(t["rcpt"][0], result_type, "RCPT %s" % rcpt)
    mwtest.eq(t["data"], (554, "5.5.1 Error: no valid recipients"), "DATA (%s)" % rcpt)
    dest.check_idle()
    mwtest.eq(dest.envelope_commands(), [], "envelope commands at the destination after %s"
              % rcpt)
    mwtest.eq(dest.messages, [], "messages at the destination after %s" % rcpt)
    got = mwtest.wait_alerts(mw, n=before + 1, event=event, domain=domain)
    mwtest.eq(len(got), before + 1, "%s alerts for %s (all: %r)" % (event, domain, mw.alerts()))
    a = got[-1]
    print("alert: %r" % a)
    mwtest.eq(a.get("server"), SERVER, "alert server")
    mwtest.eq(a.get("expected"), expected, "alert expected")
    mwtest.check(a.get("observed"), "alert without observed: %r" % a)
    return t, a


def cert_scenario(name, cert_kind, sans, result_type):
    """The destination presents a bad certificate (cert_kind for sans); a
    `secure` and a `verify` domain are refused with certificate_invalid and
    result_type; an `encrypt` domain (certificate not checked) is delivered
    over TLS."""
    with mwtest.Env(name) as env:
        net = env.netns()
        cert = net.cert(sans[0], sans, cert_kind)
        dest = net.dest("192.0.2.10", tls="starttls", cert=cert)
        mw = net.outbound(policy="secure.test secure\nverify.test verify\n"
                                 "encrypt.test encrypt\n", default_level="encrypt")
        expect_refused(net, mw, dest, "bob@secure.test", result_type, "certificate_invalid",
                       "secure (policy)")
        expect_refused(net, mw, dest, "bob@verify.test", result_type, "certificate_invalid",
                       "verify (policy)")
        dest.check_idle()
        cmds = dest.command_strings()
        mwtest.check("STARTTLS" in [c.upper() for c in cmds],
                     "mailward never sent STARTTLS: %r" % cmds)

        t = one_transaction(net, ["carol@encrypt.test"], message("encrypt"))
        mwtest.eq([t["mail"][0], t["rcpt"][0][0], t["data"][0]], [250, 250, 250],
                  "encrypt.test (MAIL, RCPT, end of data)")
        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages at the destination")
        mwtest.eq(msgs[0].rcpt_tos, ["carol@encrypt.test"], "recipients at the destination")
        mwtest.eq(msgs[0].tls, True, "encrypt.test delivered over TLS")
        mwtest.eq(mwtest.find_alerts(mw, domain="encrypt.test"), [], "alerts for encrypt.test")
        mw.stop()
    print("ok")
