#!/usr/bin/python3
"""Real Postfix as the backend, client_identity = proxy (PROXY protocol v2;
Postfix smtpd_upstream_proxy_protocol = haproxy): a client bound to
127.0.0.2 sends through mailward (STARTTLS) with smtplib.  The message lands
in the Maildir; Postfix recorded the client as [127.0.0.2], not mailward's
127.0.0.1, with the client's own EHLO name, and never complained about a
connection without a PROXY header.  Same scenario as t_postfix_xclient.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import t_postfix_xclient  # noqa: E402

if __name__ == "__main__":
    t_postfix_xclient.run("proxy")
