#!/usr/bin/python3
"""client_name_lookup: Postfix behind mailward sees the client's host name,
as it would see it itself, and its host-name checks work.

Real Postfix is the backend (client_identity = xclient) with
smtpd_client_restrictions = reject_unknown_client_hostname. The client is
at 127.0.0.1, whose name the system finds in /etc/hosts (localhost, and
localhost's addresses include 127.0.0.1), so no query leaves the machine.

  1. client_name_lookup = yes (the default): the message is accepted, and
     Postfix logs the client as localhost[127.0.0.1], in its maillog and in
     the Received: header.
  2. client_name_lookup = no: XCLIENT says NAME=[UNAVAILABLE], and Postfix
     refuses the recipient: 450 4.7.25 "cannot find your hostname".
"""

import os
import re
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

RCPT = "user@test.example"
MSG = b"From: a@sender.test\r\nTo: user@test.example\r\nSubject: name\r\n\r\nhi\r\n"


def send(env, port):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=20)
    s.starttls(context=mwtest.ssl_client_context(env))
    s.ehlo("client.test")
    try:
        return s.sendmail("a@sender.test", [RCPT], MSG)
    finally:
        s.close()


def main():
    if "localhost" not in mwtest._read_text("/etc/hosts"):
        mwtest.skip("/etc/hosts does not name 127.0.0.1 localhost")
    with mwtest.Env("xclient_name") as env:
        pf = env.postfix(identity="xclient", main={
            "smtpd_client_restrictions": "reject_unknown_client_hostname"})
        base = {"forward": "127.0.0.1:%d" % pf.port, "client_identity": "xclient"}
        mw = env.mailward(listeners={"on": dict(base, client_name_lookup="yes"),
                                     "off": dict(base, client_name_lookup="no")})

        # 1. The name looked up.
        mwtest.eq(send(env, mw.port("on")), {}, "refused recipients with the lookup")
        got = pf.wait_mailbox(RCPT, 1, 20)
        mwtest.eq(len(got), 1, "messages delivered")
        print("Received: %r" % re.findall(rb"Received: from [^\n]*\n[^\n]*", got[0])[:1])
        mwtest.check(b"from client.test (localhost [127.0.0.1])" in got[0],
                     "Received: without the client's name: %r" % got[0][:400])
        mwtest.check(re.search(r"client=localhost\[127\.0\.0\.1\]", pf.maillog()),
                     "Postfix did not log client=localhost[127.0.0.1]:\n%s" % pf.maillog())

        # 2. Without it.
        try:
            send(env, mw.port("off"))
            mwtest.fail("the recipient was taken without the client's name")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[RCPT]
            print("without the lookup: %d %s" % (code, text.decode()))
            mwtest.eq(code, 450, "RCPT without the lookup")
            mwtest.check(b"cannot find your hostname" in text, "refusal: %r" % text)
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
