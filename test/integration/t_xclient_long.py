#!/usr/bin/python3
"""XCLIENT with the longest values a client can bring: a host name of 252
characters (its PTR and A records agree, in a resolver of the test's own,
dnsmasq, in network namespaces) and EHLO names that xtext (RFC 3461)
triples, every byte a '+'. Both are the client's to choose (it controls its
own reverse zone).

An earlier build formatted that XCLIENT line (about 1100 bytes) into a
1024-byte buffer and aborted (fatalx "relay_server_send: line too long"):
any client could stop mailward. Postfix takes an XCLIENT value of 255
bytes at most, as sent ("501 5.5.4 Error: attribute value too long").
Now, through mailward to a real Postfix (client_identity = xclient,
client_name_lookup = yes):

  1. EHLO of 85 '+' (255 bytes in xtext): delivered;
  2. EHLO of 255 '+' (765 in xtext): XCLIENT says HELO=[UNAVAILABLE], the
     replayed EHLO names it; delivered.

Each time mailward is still running and Postfix logs the client under
the 252-character name."""

import os
import re
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

CLIENT = "192.0.2.12"
HOSTS = (CLIENT, "192.0.2.53")
SENDER = "198.51.100.1"  # the sender namespace's address (NetEnv)
# Four labels of 61 and ".test": 252 characters, a valid host name.
NAME = ".".join(["a" * 61, "b" * 61, "c" * 61, "d" * 61]) + ".test"
MSG = b"From: a@sender.test\r\nTo: user@test.example\r\nSubject: long\r\n\r\nhi\r\n"


def send(net, mw, port, helo):
    s = smtplib.SMTP(local_hostname=helo, timeout=30)
    with net.inside(net.ns_of(CLIENT)):
        s.connect(SENDER, port)
    try:
        code, _ = s.ehlo(helo)
        mwtest.eq(code, 250, "EHLO with a %d-character name" % len(helo))
        refused = s.sendmail("a@sender.test", ["user@test.example"], MSG)
        mwtest.eq(refused, {}, "refused recipients")
        s.quit()
    except smtplib.SMTPException as e:
        mwtest.fail("EHLO of %d: the session failed: %r; mailward alive: %s; its log:\n%s"
                    % (len(helo), e, mw.alive(), mw.log()[-3000:]))
    mwtest.check(mw.alive(), "mailward is no longer running:\n%s" % mw.log()[-3000:])


def main():
    mwtest.check(len(NAME) == 252, "name of %d characters" % len(NAME))
    with mwtest.Env("xclient_long") as env:
        net = env.netns(hosts=HOSTS)
        net.dnsmasq("192.0.2.53", hosts={NAME: CLIENT})
        net.resolver("192.0.2.53")
        pf = env.postfix(identity="xclient", netns=net.sender)
        port = mwtest.free_port()
        mw = env.mailward(listeners={"in": {
            "listen": "0.0.0.0:%d" % port, "accept_tls": "none", "require_tls": "no",
            "forward": "127.0.0.1:%d" % pf.port, "client_identity": "xclient",
            "client_name_lookup": "yes"}}, globals={"log_level": "debug"},
            netns=net.sender, wait=False)
        mwtest.check(net.listening(net.sender, port, timeout=20, pid=mw.pid),
                     "mailward not listening:\n%s" % mw.log())
        for n, helo in enumerate(("+" * 85, "+" * 255), 1):
            send(net, mw, port, helo)
            seen = lambda: pf.maillog().count("client=%s[%s]" % (NAME, CLIENT))  # noqa: E731
            mwtest.check(mwtest.wait_for(lambda: seen() >= n, 10),
                         "Postfix did not log client=%s[%s] %d times:\n%s"
                         % (NAME, CLIENT, n, pf.maillog()[-3000:]))
        names = re.findall(r"event=client_name name=(\S+)", mw.log())
        mwtest.eq(names, [NAME, NAME], "event=client_name names")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
