#!/usr/bin/python3
"""Outbound, STARTTLS stripped on the path after a successful delivery.

default_level = may and no policy file, so nothing but the learned store can
make TLS expected. The destination (aiosmtpd with STARTTLS, certificate for
mx.learned.test) sits behind the stripper fixture at 192.0.2.10:25.

1. stripper in pass mode: bob@learned.test is delivered over TLS; mailward
   records learned.test in its learned store.
2. stripper masks STARTTLS ("XXXXXXXA"): RCPT bob@learned.test gets 451 4.7.5
   starttls-not-supported, alert starttls_stripped with expected
   "... (learned)"; the destination sees no envelope.
3. stripper deletes the STARTTLS line: the same.
4. control: a domain never delivered to (fresh.test, level may) through the
   masking stripper is delivered in clear text with no starttls_stripped
   alert: only the learned record made TLS expected.
5. the admin's way out, for a domain whose servers stopped offering TLS
   for good: `mailward -l` lists learned.test (TLSv1.3, its cipher and
   date); `mailward -f LEARNED.test.` forgets it while mailward runs (a
   second -f says it is not there, exit 1; a bad name is refused); the
   next delivery through the masking stripper goes through in clear text,
   as level may says, with no new alert."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

SERVER = "192.0.2.10:25"


def msg(n):
    return b"From: alice@sender.test\r\nSubject: learned %d\r\n\r\nbody %d\r\n" % (n, n)


def main():
    with mwtest.Env("out_stripped_learned") as env:
        net = env.netns()
        cert = net.cert("mx.learned.test")
        dest = net.dest("192.0.2.10", tls="starttls", cert=cert, listen="127.0.0.1", port=2525)
        strip = net.stripper("192.0.2.10", 25, to=("127.0.0.1", 2525), mode="pass")
        mw = net.outbound(policy=None, default_level="may")

        # 1. Learn.
        s = net.smtp("192.0.2.10")
        s.ehlo()
        mwtest.check(not s.has_extn("starttls"), "STARTTLS shown to the client")
        t = mwtest.transaction(s, "alice@sender.test", ["bob@learned.test"], msg(1))
        s.quit()
        mwtest.eq([t["mail"][0], t["rcpt"][0][0], t["data"][0]], [250, 250, 250],
                  "first delivery (MAIL, RCPT, end of data)")
        msgs = dest.wait_messages(1, 10)
        mwtest.eq(len(msgs), 1, "messages after the first delivery")
        mwtest.eq(msgs[0].tls, True, "first delivery over TLS")
        mwtest.eq(mw.alerts(), [], "alerts after the first delivery")
        ncmds = len(dest.commands)

        # 2. and 3. Masked, then stripped.
        for mode in ("mask", "strip"):
            strip.set_mode(mode)
            s = net.smtp("192.0.2.10")
            code, caps = s.ehlo()
            print("EHLO reply with the stripper in %s mode: %r" % (mode, caps))
            t = mwtest.transaction(s, "alice@sender.test", ["bob@learned.test"], msg(2))
            s.quit()
            mwtest.eq(t["mail"], (250, "2.1.0 Ok"), "MAIL (%s)" % mode)
            mwtest.check_deferred(t["rcpt"][0], "starttls-not-supported", "RCPT (%s)" % mode)
            mwtest.eq(t["data"][0], 554, "DATA with no valid recipient (%s)" % mode)
            dest.check_idle()
            new = dest.command_strings()[ncmds:]
            ncmds += len(new)
            print("destination saw (%s): %r" % (mode, new))
            mwtest.check(not [c for c in new if c.split(" ")[0].upper() in
                              ("MAIL", "RCPT", "DATA", "BDAT")],
                         "envelope sent to a stripped server (%s): %r" % (mode, new))
            mwtest.eq(len(dest.messages), 1, "messages at the destination (%s)" % mode)
            mwtest.check(mode in strip.events(), "the stripper did not %s: %r"
                         % (mode, strip.events()))
            got = mwtest.wait_alerts(mw, n=1 if mode == "mask" else 2,
                                     event="starttls_stripped", domain="learned.test")
            mwtest.eq(len(got), 1 if mode == "mask" else 2,
                      "starttls_stripped alerts (%s); all: %r" % (mode, mw.alerts()))
            a = got[-1]
            print("alert (%s): %r" % (mode, a))
            mwtest.eq(a.get("server"), SERVER, "alert server (%s)" % mode)
            mwtest.check(str(a.get("expected", "")).endswith("(learned)"),
                         "alert expected %r is not from the learned store" % a.get("expected"))
            mwtest.check(str(a.get("expected", "")).split(" ")[0] in
                         ("encrypt", "verify", "secure"),
                         "learned expectation below encrypt: %r" % a.get("expected"))
            if mode == "mask":
                mwtest.check("XXXXXXXA" in str(a.get("observed")),
                             "masked keyword not in observed: %r" % a.get("observed"))

        # 4. Control: never learned, level may: delivered in clear text.
        strip.set_mode("mask")
        s = net.smtp("192.0.2.10")
        s.ehlo()
        t = mwtest.transaction(s, "alice@sender.test", ["carol@fresh.test"], msg(3))
        s.quit()
        mwtest.eq([t["rcpt"][0][0], t["data"][0]], [250, 250], "fresh.test (RCPT, end of data)")
        msgs = dest.wait_messages(2, 10)
        mwtest.eq(len(msgs), 2, "messages after the control delivery")
        mwtest.eq(msgs[1].rcpt_tos, ["carol@fresh.test"], "control recipient")
        mwtest.eq(msgs[1].tls, False, "control delivery in clear text")
        mwtest.eq(mwtest.find_alerts(mw, event="starttls_stripped", domain="fresh.test"), [],
                  "starttls_stripped for a domain nothing expected TLS of")

        # 5. The learned history from the command line.
        def cli(*args):
            p = subprocess.run([mwtest.MAILWARD, "-c", mw.conf] + list(args),
                               capture_output=True, text=True, timeout=30)
            print("mailward %s: exit %d, %r %r" % (" ".join(args), p.returncode, p.stdout,
                                                    p.stderr))
            return p
        p = cli("-l")
        mwtest.eq(p.returncode, 0, "mailward -l")
        lines = p.stdout.splitlines()
        mwtest.check(len(lines) == 1 and lines[0].startswith("learned.test learned=20") and
                     " version=TLSv1.3 " in lines[0] and " age_days=0 " in lines[0] and
                     not lines[0].endswith(" stale"), "mailward -l: %r" % lines)
        p = cli("-f", "LEARNED.test.")
        mwtest.eq((p.returncode, p.stdout), (0, "learned.test: forgotten\n"), "mailward -f")
        p = cli("-f", "learned.test")
        mwtest.eq(p.returncode, 1, "mailward -f of a domain not there")
        mwtest.check("not in the learned history" in p.stderr, "-f again: %r" % p.stderr)
        p = cli("-f", "bad domain")
        mwtest.check(p.returncode == 1 and "not a domain" in p.stderr, "-f 'bad domain'")
        mwtest.eq(cli("-l").stdout, "", "mailward -l after -f")
        before = len(mwtest.find_alerts(mw, event="starttls_stripped"))
        s = net.smtp("192.0.2.10")
        s.ehlo()
        t = mwtest.transaction(s, "alice@sender.test", ["bob@learned.test"], msg(4))
        s.quit()
        mwtest.eq([t["rcpt"][0][0], t["data"][0]], [250, 250],
                  "learned.test once forgotten (RCPT, end of data)")
        msgs = dest.wait_messages(3, 10)
        mwtest.eq([len(msgs), msgs[-1].tls], [3, False], "the delivery after -f")
        mwtest.eq(len(mwtest.find_alerts(mw, event="starttls_stripped")), before,
                  "starttls_stripped alerts after -f")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
