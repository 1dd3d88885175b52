#!/usr/bin/python3
"""Real Postfix behind mailward for an IPv6 client: mailward listens on
[::1], the client (smtplib, STARTTLS) comes from ::1, and mailward reaches
Postfix over IPv4 (127.0.0.1). With XCLIENT (ADDR=IPV6:::1) and then with
the PROXY protocol v2 (an IPv6 address block), Postfix records the client
as [::1], in its maillog and in the Received: header ("IPv6:::1"), which it
cannot have from the connection itself. See t_postfix_xclient.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import t_postfix_xclient  # noqa: E402

if __name__ == "__main__":
    t_postfix_xclient.run("xclient", ipv6=True)
    t_postfix_xclient.run("proxy", ipv6=True)
