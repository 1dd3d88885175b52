#!/usr/bin/python3
"""Outbound, the destination (aiosmtpd with STARTTLS at 192.0.2.10:25, through
the redirect) presents a certificate for mx.secure.test and mx.verify.test,
unexpired, signed by a CA that is not in ca_file.

secure.test (secure) and verify.test (verify: with forward = original-dst it
matches nexthop:dot-nexthop) are refused: RCPT 451 4.7.5 certificate-not-trusted,
alert certificate_invalid, nothing of the envelope at the destination.
encrypt.test (encrypt: TLS needed, certificate not checked) is delivered over
TLS."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outcheck  # noqa: E402

if __name__ == "__main__":
    outcheck.cert_scenario("out_cert_untrusted", "untrusted", ['mx.secure.test', 'mx.verify.test'], "certificate-not-trusted")
