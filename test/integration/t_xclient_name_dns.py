#!/usr/bin/python3
"""client_name_lookup against a resolver of the test's own, in network
namespaces (nothing leaves the machine).

mailward (client_identity = xclient, client_name_lookup = yes) and a real
Postfix behind it run in the sender namespace; clients come from
192.0.2.11 and 192.0.2.12, each in its own namespace. The sender's
resolver is dnsmasq (real software) at 192.0.2.53, which knows
host-b.test = 192.0.2.12 (A and PTR) and nothing about 192.0.2.11.

  1. From 192.0.2.12: Postfix logs the client as host-b.test[192.0.2.12].
  2. From 192.0.2.11 (no PTR record): unknown[192.0.2.11], and the
     message is still taken.
  3. The resolver is a fixture at 192.0.2.54 that reads queries and never
     answers (resolver timeout 8 s): XCLIENT waits 5 s, then says
     [TEMPUNAVAIL] (event=client_name ... reason="lookup too slow"); the
     message is taken, in 5 to 8 s, not refused with 421 "backend
     timeout".
"""

import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402

HOSTS = ("192.0.2.11", "192.0.2.12", "192.0.2.53", "192.0.2.54")
SENDER = "198.51.100.1"  # the sender namespace's address (NetEnv)
MSG = b"From: a@sender.test\r\nTo: user@test.example\r\nSubject: name\r\n\r\nhi\r\n"
# A resolver that reads and never answers: a fixture (no DNS server does that).
SILENT = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
          "s.bind((sys.argv[1], 53))\nwhile True:\n    s.recvfrom(4096)\n")


def send(net, src, port):
    """A message from src (its namespace) through mailward; seconds taken."""
    t0 = time.monotonic()
    s = smtplib.SMTP(local_hostname="client.test", timeout=30)
    with net.inside(net.ns_of(src)):
        s.connect(SENDER, port)
    s.ehlo("client.test")
    mwtest.eq(s.sendmail("a@sender.test", ["user@test.example"], MSG), {},
              "refused recipients from %s" % src)
    s.quit()
    return time.monotonic() - t0


def start(env, net, pf):
    port = mwtest.free_port()
    mw = env.mailward(listeners={"in": {
        "listen": "0.0.0.0:%d" % port, "accept_tls": "none", "require_tls": "no",
        "forward": "127.0.0.1:%d" % pf.port, "client_identity": "xclient",
        "client_name_lookup": "yes"}}, netns=net.sender, wait=False)
    mwtest.check(net.listening(net.sender, port, timeout=20, pid=mw.pid),
                 "mailward not listening:\n%s" % mw.log())
    return mw, port


def clients(pf):
    return re.findall(r"client=(\S+\[[0-9.]+\])", pf.maillog())


def main():
    with mwtest.Env("xclient_name_dns") as env:
        net = env.netns(hosts=HOSTS)
        net.dnsmasq("192.0.2.53", hosts={"host-b.test": "192.0.2.12"})
        net.resolver("192.0.2.53")
        pf = env.postfix(identity="xclient", netns=net.sender)
        mw, port = start(env, net, pf)

        # 1 and 2.
        send(net, "192.0.2.12", port)
        send(net, "192.0.2.11", port)
        mwtest.check(mwtest.wait_for(lambda: len(clients(pf)) >= 2, 10),
                     "Postfix logged fewer than two clients:\n%s" % pf.maillog())
        print("Postfix saw: %r" % clients(pf))
        mwtest.eq(clients(pf)[:2], ["host-b.test[192.0.2.12]", "unknown[192.0.2.11]"],
                  "the clients Postfix logged")
        mw.stop()

        # 3. A resolver that never answers.
        ns = net.ns_of("192.0.2.54")
        net.spawn(ns, ["/usr/bin/python3", "-c", SILENT, "192.0.2.54"],
                  log=env.path("silent.log"))
        mwtest.check(mwtest.wait_for(
            lambda: "192.0.2.54:53" in net.run(ns, ["ss", "-uln"]).stdout, 10),
            "the silent resolver did not start")
        net.resolver("192.0.2.54", options="timeout:8 attempts:1")
        mw, port = start(env, net, pf)
        took = send(net, "192.0.2.12", port)
        print("with a resolver that never answers: %.1f s" % took)
        mwtest.check(4.5 < took < 8, "took %.1f s, not the 5 s wait" % took)
        mwtest.check('event=client_name name=[TEMPUNAVAIL] reason="lookup too slow"'
                     in mw.log(), "no event=client_name for the slow lookup:\n%s"
                     % mw.log()[-2000:])
        mwtest.check("backend_timeout" not in mw.log(), "a backend timeout was logged")
        mw.stop()
    print("ok")


if __name__ == "__main__":
    main()
