#!/usr/bin/python3
"""destserver: mwtest's recorder (aiosmtpd, real software) as a process of its
own, for the outbound tests' destination namespaces (mwtest.NetEnv.dest()).

    destserver.py --state FILE --addr ADDR --port PORT [--tls starttls|implicit
                  --cert PEM --key KEY] [--hostname NAME] [--auth USER:PASSWORD]
                  [--no-ehlo] [--defer-once ADDR]...

Not a test (no t_ prefix). Runs until killed. Whenever what it recorded
changes, and every 0.1 s, it rewrites FILE (atomically, by rename) as JSON:
written (time.time() of the write), sessions, commands
(base64 of each raw command line), closed
(sessions ended) and messages (envelope, base64 of the
message bytes, HELO name, whether the session was in TLS). FILE first appears
once the server accepts connections."""

import argparse
import base64
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwtest  # noqa: E402


class _NoEnv:
    certs = None


def dump(rec, path):
    with rec.lock:
        msgs = list(rec.messages)
    state = {
        "written": time.time(),
        "sessions": rec.sessions,
        "closed": rec.closed,
        "commands": [base64.b64encode(c).decode() for c in list(rec.commands)],
        "messages": [{
            "mail_from": m.mail_from, "rcpt_tos": m.rcpt_tos,
            "data": base64.b64encode(m.data).decode(),
            "peer": list(m.peer) if m.peer else None, "helo": m.helo,
            "tls": bool(m.tls) or rec.tls == "implicit",
            "mail_options": m.mail_options, "rcpt_options": m.rcpt_options,
        } for m in msgs],
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.rename(tmp, path)
    return (state["sessions"], state["closed"], len(state["commands"]),
            len(state["messages"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", choices=("starttls", "implicit"))
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--hostname", default="mx.dest.test")
    ap.add_argument("--tls-max", help="highest TLS version offered, e.g. TLSv1.2")
    ap.add_argument("--auth", metavar="USER:PASSWORD",
                    help="offer AUTH (aiosmtpd's, after STARTTLS) and take this login")
    ap.add_argument("--no-ehlo", action="store_true", help="answer EHLO with 502")
    ap.add_argument("--defer-once", action="append", default=[], metavar="ADDR",
                    help="answer the first RCPT TO this address with 450")
    a = ap.parse_args()
    cert = (a.cert, a.key) if a.cert else None
    kw = {}
    if a.auth:
        user, _, password = a.auth.partition(":")
        kw = {"authenticator": mwtest.login_checker(user, password), "auth_require_tls": True}
    rec = mwtest.Recorder(_NoEnv(), port=a.port, tls=a.tls, host=a.addr, cert=cert,
                          hostname=a.hostname, tls_max=a.tls_max, no_ehlo=a.no_ehlo,
                          defer_once=a.defer_once, **kw)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("destserver: %s:%d tls=%s cert=%s" % (a.addr, a.port, a.tls, a.cert), flush=True)
    seen = dump(rec, a.state)
    last = time.monotonic()
    while not stop:
        time.sleep(0.02)
        # Also every 0.1 s unchanged: a reader that waits for a state written
        # after it started knows that it sees everything done before then.
        if ((rec.sessions, rec.closed, len(rec.commands), len(rec.messages)) != seen or
                time.monotonic() - last >= 0.1):
            seen = dump(rec, a.state)
            last = time.monotonic()
    dump(rec, a.state)
    rec.stop()


if __name__ == "__main__":
    main()
