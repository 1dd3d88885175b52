#!/usr/bin/env python3
"""Tests for scripts/import-eff-policy, run from the repository root:

    /usr/bin/python3 test/unit/test_import_eff.py

On EFF's real (expired) policy.json in policies/eff-starttls-everywhere/, and
on small crafted inputs. The script is run as a program, as an administrator
would run it: what is checked is its exit status, its stderr and the table.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = "scripts/import-eff-policy"
REAL_JSON = "policies/eff-starttls-everywhere/policy.json"
SHIPPED_TABLE = "policies/eff-starttls-everywhere.policy"
SHIPPED_NOW = "2026-11-23T00:00:00Z"


def run(*args):
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, check=False
    )


def entries(table):
    """{domain: (level, match or None, comment above it or None)} of a table."""
    out = {}
    comment = None
    for line in table.splitlines():
        if line.startswith("#"):
            comment = line
            continue
        if not line.strip():
            comment = None
            continue
        words = line.split()
        match = None
        for w in words[2:]:
            if w.startswith("match="):
                match = w[len("match="):]
        assert words[0] not in out, f"duplicate {words[0]}"
        out[words[0]] = (words[1], match, comment)
        comment = None
    return out


def testing_lines(table):
    """{domain: (match, the line above it)} of the "# testing: DOMAIN secure
    match=..." comments: the list's testing domains, not entries."""
    out = {}
    above = None
    for line in table.splitlines():
        if line.startswith("# testing: "):
            words = line[len("# testing: "):].split()
            assert words[0] not in out, f"duplicate {words[0]}"
            assert words[1] == "secure" and words[2].startswith("match="), line
            out[words[0]] = (words[2][len("match="):], above)
        above = line
    return out


def crafted(**overrides):
    data = {
        "timestamp": "2030-01-01T00:00:00Z",
        "expires": "2030-02-01T00:00:00+00:00",
        "version": "0.1",
        "author": "test",
        "policy-aliases": {
            "big": {"mode": "enforce", "mxs": [".mx.big.example", "mx.big.example"]},
            "soft": {"mode": "testing", "mxs": ["mx.soft.example"]},
        },
        "policies": {
            "big.example": {"policy-alias": "big"},
            "Other.Example": {"policy-alias": "big", "mode": "testing", "mxs": ["x.example"]},
            "soft.example": {"policy-alias": "soft"},
            "plain.example": {"mode": "enforce", "mxs": ["mx1.plain.example", ".plain.example"]},
            "try.example": {"mode": "testing", "mxs": [".try.example"]},
        },
    }
    data.update(overrides)
    return data


class Temp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="mailward-test-import-")
        self.addCleanup(self.dir.cleanup)

    def write(self, content, name="policy.json"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return path


class RealList(Temp):
    """EFF's last published list: expired since 2020-06-03."""

    @classmethod
    def setUpClass(cls):
        with open(REAL_JSON, encoding="utf-8") as f:
            cls.data = json.load(f)
        modes = {}
        for domain, pol in cls.data["policies"].items():
            if "policy-alias" in pol:
                pol = cls.data["policy-aliases"][pol["policy-alias"]]
            modes[domain] = (pol["mode"], pol["mxs"])
        cls.modes = modes

    def test_refused_when_expired(self):
        r = run(REAL_JSON)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("the list expired on 2020-06-03T17:25:12Z", r.stderr)
        self.assertIn("--ignore-expiry", r.stderr)
        self.assertTrue(r.stderr.startswith(f"import-eff-policy: {REAL_JSON}: "))

    def test_refused_with_now_just_after_expiry(self):
        r = run("--now", "2020-06-03T17:25:13Z", REAL_JSON)
        self.assertEqual(r.returncode, 1)

    def test_accepted_before_expiry(self):
        r = run("--now", "2020-06-01T00:00:00Z", REAL_JSON)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("EXPIRY IGNORED", r.stdout)
        self.assertIn("# expires:   2020-06-03T10:25:12.710055-07:00 (2020-06-03T17:25:12Z)",
                      r.stdout)

    def test_ignore_expiry(self):
        r = run("--ignore-expiry", "--now", SHIPPED_NOW, REAL_JSON)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        header = [l for l in r.stdout.splitlines() if l.startswith("#")][:20]
        self.assertIn(f"# source:    {REAL_JSON}", header)
        self.assertIn("# timestamp: 2020-05-20T10:25:12.710034-07:00 (2020-05-20T17:25:12Z)",
                      header)
        self.assertIn(f"# converted: {SHIPPED_NOW}", header)
        self.assertTrue(any(l.startswith("# EXPIRY IGNORED: this list expired on "
                                         "2020-06-03T17:25:12Z") for l in header))

        got = entries(r.stdout)
        soft = testing_lines(r.stdout)
        n_enforce = sum(1 for m, _ in self.modes.values() if m == "enforce")
        n_testing = sum(1 for m, _ in self.modes.values() if m == "testing")
        # testing domains have no entry: nothing lowers their level
        self.assertEqual((len(got), len(soft)), (n_enforce, n_testing))
        self.assertEqual({l for l, _, _ in got.values()}, {"secure"})
        self.assertEqual((n_enforce, n_testing), (361, 565))
        self.assertIn(f"# domains:   926 ({n_enforce} enforce -> secure, "
                      f"{n_testing} testing -> comment only)", header)
        # every domain has the mode and mxs the JSON gives it
        for domain, (mode, mxs) in self.modes.items():
            # names are folded to lower case (some entries are mixed case)
            mxs = ":".join(dict.fromkeys(mx.lower() for mx in mxs))
            if mode == "enforce":
                self.assertEqual(got[domain][:2], ("secure", mxs), domain)
                self.assertNotIn(domain, soft)
            else:
                self.assertNotIn(domain, got)
                self.assertEqual(soft[domain][0], mxs, domain)

    def test_spot_checks(self):
        r = run("--ignore-expiry", "--now", SHIPPED_NOW, REAL_JSON)
        lines = r.stdout.splitlines()
        self.assertIn("comcast.net secure match=mx1.comcast.net:mx2.comcast.net", lines)
        # a .suffix MX pattern stays .suffix
        self.assertIn("gmail.com secure "
                      "match=gmail-smtp-in.l.google.com:.gmail-smtp-in.l.google.com", lines)
        self.assertIn("# testing: eff.org secure match=.eff.org", lines)
        # policy-alias resolved
        i = lines.index("# testing: hotmail.com secure "
                        "match=.olc.protection.outlook.com:.mail.protection.outlook.com")
        self.assertEqual(lines[i - 1], "# testing (policy-alias outlook)")
        soft = testing_lines(r.stdout)
        self.assertEqual(soft["aol.com"][1], "# testing (policy-alias yahoo)")
        self.assertIn(".am0.yahoodns.net:mta5.am0.yahoodns.net", soft["aol.com"][0])
        # no testing domain is an entry (a "may" would lower its level)
        for domain in ("eff.org", "hotmail.com", "aol.com", "yahoo.com", "outlook.com"):
            self.assertFalse(any(l.split()[:1] == [domain] for l in lines), domain)

    def test_mixed_case_mx_folded(self):
        r = run("--ignore-expiry", "--now", SHIPPED_NOW, REAL_JSON)
        self.assertIn("technikumnukleoniczne.pl secure match=technikumnukleoniczne-pl.mail."
                      "protection.outlook.com:mx1.comcast.net:mx2.comcast.net",
                      r.stdout.splitlines())

    def test_shipped_table_is_current(self):
        """policies/ holds exactly what the importer makes of the shipped JSON."""
        r = run("--ignore-expiry", "--now", SHIPPED_NOW, REAL_JSON)
        with open(SHIPPED_TABLE, encoding="utf-8") as f:
            self.assertEqual(f.read(), r.stdout)

    def test_shipped_json_is_eff_copy(self):
        with open(REAL_JSON, encoding="utf-8") as f:
            data = json.load(f)
        self.assertEqual(data["expires"], "2020-06-03T10:25:12.710055-07:00")
        self.assertEqual(len(data["policies"]), 926)


class Crafted(Temp):
    NOW = "2030-01-15T00:00:00Z"

    def convert(self, data, *extra):
        return run("--now", self.NOW, *extra, self.write(data))

    def assertRefused(self, data, message):
        r = self.convert(data)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(r.stdout, "")
        self.assertIn(message, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)

    def test_alias_and_modes(self):
        r = self.convert(crafted())
        self.assertEqual(r.returncode, 0, r.stderr)
        got = entries(r.stdout)
        self.assertEqual(got["big.example"][:2], ("secure", ".mx.big.example:mx.big.example"))
        self.assertEqual(got["big.example"][2], "# enforce (policy-alias big)")
        # policy-alias wins over the other fields (RULES.md); the key is folded
        self.assertEqual(got["other.example"][:2], ("secure", ".mx.big.example:mx.big.example"))
        soft = testing_lines(r.stdout)
        self.assertNotIn("soft.example", got)
        self.assertEqual(soft["soft.example"], ("mx.soft.example",
                                                "# testing (policy-alias soft)"))
        self.assertEqual(got["plain.example"][:2],
                         ("secure", "mx1.plain.example:.plain.example"))
        self.assertIsNone(got["plain.example"][2])
        self.assertNotIn("try.example", got)
        self.assertEqual(soft["try.example"][0], ".try.example")
        self.assertNotIn("EXPIRY IGNORED", r.stdout)
        self.assertIn("# domains:   5 (3 enforce -> secure, 2 testing -> comment only)",
                      r.stdout)
        # sorted, so that a new list gives a readable diff
        domains = [l.split()[0] for l in r.stdout.splitlines() if l and not l.startswith("#")]
        self.assertEqual(domains, sorted(domains))

    def test_epoch_times(self):
        r = self.convert(crafted(timestamp=1893456000, expires=1896134400))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# expires:   1896134400 (2030-02-01T00:00:00Z)", r.stdout)
        r = self.convert(crafted(expires=1893456000))  # 2030-01-01
        self.assertEqual(r.returncode, 1)
        self.assertIn("expired on 2030-01-01T00:00:00Z", r.stderr)

    def test_ignore_expiry_says_so(self):
        r = self.convert(crafted(expires="2030-01-01T00:00:00Z"), "--ignore-expiry")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# EXPIRY IGNORED: this list expired on 2030-01-01T00:00:00Z", r.stdout)

    def test_output_file(self):
        out = os.path.join(self.dir.name, "out.policy")
        r = self.convert(crafted(), "-o", out)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        with open(out, encoding="utf-8") as f:
            self.assertIn("plain.example secure", f.read())
        # refused: the old file stays as it was
        r = run("--now", "2031-01-01T00:00:00Z", "-o", out, self.write(crafted()))
        self.assertEqual(r.returncode, 1)
        with open(out, encoding="utf-8") as f:
            self.assertIn("plain.example secure", f.read())

    def test_unknown_alias(self):
        data = crafted()
        data["policies"]["x.example"] = {"policy-alias": "nosuch"}
        self.assertRefused(data, "policies.x.example: unknown policy-alias 'nosuch'")

    def test_bad_json(self):
        r = run("--now", self.NOW, self.write('{"policies": {'))
        self.assertEqual(r.returncode, 1)
        self.assertIn("not valid JSON", r.stderr)
        self.assertRefused("[1, 2]", "top level is not an object")

    def test_duplicate_key(self):
        text = json.dumps(crafted())
        text = text.replace('"try.example":', '"plain.example": {"mode": "testing", '
                            '"mxs": ["a.example"]}, "try.example":')
        self.assertRefused(text, "key 'plain.example' appears twice")

    def test_missing_file(self):
        r = run("--now", self.NOW, os.path.join(self.dir.name, "nope.json"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read: No such file or directory", r.stderr)

    def test_missing_fields(self):
        for field in ("timestamp", "expires", "policies"):
            data = crafted()
            del data[field]
            self.assertRefused(data, f"missing field '{field}'")
        data = crafted()
        del data["policies"]["try.example"]["mode"]
        self.assertRefused(data, "policies.try.example: missing field 'mode'")
        data = crafted()
        del data["policies"]["try.example"]["mxs"]
        self.assertRefused(data, "policies.try.example: missing field 'mxs'")
        data = crafted()
        del data["policy-aliases"]["big"]["mxs"]
        self.assertRefused(data, "policy-aliases.big: missing field 'mxs'")

    def test_bad_values(self):
        cases = [
            ({"mode": "strict", "mxs": ["a.example"]}, "mode must be enforce or testing"),
            ({"mode": "enforce", "mxs": []}, "mxs must be a non-empty list"),
            ({"mode": "enforce", "mxs": "a.example"}, "mxs must be a non-empty list"),
            ({"mode": "enforce", "mxs": ["bad name.example"]}, "bad mxs entry"),
            ({"mode": "enforce", "mxs": [7]}, "is not a string"),
            ({"mode": "enforce", "mxs": ["a.example"], "extra": 1}, "unknown field 'extra'"),
            ("enforce", "not an object"),
        ]
        for pol, message in cases:
            data = crafted()
            data["policies"]["try.example"] = pol
            self.assertRefused(data, message)
        data = crafted()
        data["policies"]["bad_domain!"] = {"mode": "testing", "mxs": ["a.example"]}
        self.assertRefused(data, "policies.bad_domain!: bad domain")
        self.assertRefused(crafted(version="0.2"), "unsupported version '0.2'")
        self.assertRefused(crafted(expires="next tuesday"), "expires: not a time")
        self.assertRefused(crafted(expires="2030-02-30T00:00:00Z"), "expires: bad time")

    def test_bad_now(self):
        r = run("--now", "soon", self.write(crafted()))
        self.assertEqual(r.returncode, 1)
        self.assertIn("--now: not a time", r.stderr)


if __name__ == "__main__":
    unittest.main()
