"""mwtest: the harness every mailward integration test uses.

A test is a Python 3 script test/integration/t_*.py, one scenario per file,
run with /usr/bin/python3 (Debian's, which has python3-aiosmtpd) from the
repository root.  It exits 0 on pass, non-zero on failure (printing why) and
77 when it cannot run here (printing the reason as its last line).

    import mwtest
    with mwtest.Env("name") as env:
        be = env.recorder()                    # aiosmtpd recording backend
        pf = env.postfix(identity="xclient")   # a private Postfix instance
        sink = env.smtp_sink()                 # Postfix's smtp-sink
        mw = env.mailward(listeners={"smtp": {"forward": "127.0.0.1:%d" % be.port}})
        ...
        mw.stop()

Env owns a temporary directory (env.dir) and every process and server it
started; leaving the `with` block stops them all, also on failure, on an
exception and on SIGTERM (run-tests' timeout).  The directory is removed when
the test passed and kept (its path printed) when it failed, or always with
MWTEST_KEEP=1.  MWTEST_DEBUG=1 starts mailward with -d.  MAILWARD=PATH tests
another binary than build-test/mailward.

Real software: the recorder is aiosmtpd (its SMTP class, with the reader
wrapped only to record raw command lines), Postfix and smtp-sink are Debian's.
Fixtures that are not real software are named as such:
MisbehavingBackend, and the recorder's optional XCLIENT support
(recorder(xclient=True); aiosmtpd has none, use env.postfix() to test
against a real XCLIENT implementation).
"""

import asyncio
import contextlib
import datetime
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAILWARD = os.environ.get("MAILWARD") or os.path.join(REPO, "build-test", "mailward")
MKCERT = os.path.join(REPO, "scripts", "mkcert")
CERT_CACHE = os.path.join(REPO, "build-test", "certs")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
                     "ERROR: UndefinedBehaviorSanitizer")


# -- assertions ------------------------------------------------------------
class Failure(SystemExit):
    """Raised by check()/eq(): exits the test with status 1."""


def fail(msg):
    print("FAIL: %s" % msg, flush=True)
    raise Failure(1)


def check(cond, msg):
    """Fail the test with msg unless cond."""
    if not cond:
        fail(msg)


def eq(a, b, msg):
    """Fail the test unless a == b, showing both."""
    if a != b:
        fail("%s: got %r, expected %r" % (msg, a, b))


def wait_for(cond, timeout, step=0.05):
    """cond()'s first true value, or its last value after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def proc_status(pid):
    """/proc/PID/status as a dict (Uid, Gid, CapEff, NoNewPrivs, ...)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def children(pid):
    """The pids whose parent is pid, sorted (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return sorted(out)


def skip(reason):
    """End the test as skipped (exit status 77), reason on the last line."""
    print("SKIP: %s" % reason, flush=True)
    raise SystemExit(77)


def is_root():
    return os.geteuid() == 0


# -- ports -------------------------------------------------------------------
def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (bind :0 and close)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _listening_ports(pid=None):
    """Ports in LISTEN state on this host (from /proc/net/tcp and tcp6), or
    in the network namespace of process pid (/proc/PID/net/tcp)."""
    ports = set()
    base = "/proc/%d/net" % pid if pid else "/proc/net"
    for f in (base + "/tcp", base + "/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def is_listening(port):
    """True if something listens on TCP port (checked without connecting, so
    that mailward sees no session and writes no alert)."""
    return port in _listening_ports()


def wait_listening(ports, timeout, alive=None, pid=None):
    """Wait until every port listens. alive(): False stops waiting early.
    pid: look in that process's network namespace (see NetEnv).
    Returns the ports still not listening."""
    end = time.monotonic() + timeout
    while True:
        missing = [p for p in ports if p not in _listening_ports(pid)]
        if not missing or time.monotonic() > end or (alive and not alive()):
            return missing
        time.sleep(0.05)


def first_line(sock):
    """The first line a server sends on sock (its greeting), b"" when it
    closes (or resets) first."""
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def split_hostport(s):
    """"127.0.0.1:25" -> ("127.0.0.1", 25); "[::1]:25" -> ("::1", 25)."""
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def ssl_client_context(env):
    """An SSLContext that trusts the test CA (env.certs/ca.pem) and checks
    names (the server certificate has localhost, mx.test, 127.0.0.1, ::1)."""
    return ssl.create_default_context(cafile=os.path.join(env.certs, "ca.pem"))


def raw_tls_client(env, port, timeout=20, source=None):
    """A rawsmtp.Client (the byte-exact test client) on 127.0.0.1:port that
    had the 220 greeting, EHLO, STARTTLS (the test CA) and EHLO again
    (250): (client, that last EHLO's reply)."""
    from rawsmtp import Client
    c = Client(port, timeout=timeout, source=source)
    eq(c.reply().code, 220, "greeting")
    c.cmd("EHLO client.test")
    c.starttls(ssl_client_context(env))
    r = c.cmd("EHLO client.test")
    eq(r.code, 250, "EHLO after TLS")
    return c, r


def ssl_server_context(env, name="server"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(env.certs, name + ".pem"),
                        os.path.join(env.certs, name + ".key"))
    return ctx


def _server_context(env, cert=None, tls_max=None):
    """ssl_server_context(env), or one for cert = (certfile, keyfile).
    tls_max: the highest version offered ("TLSv1.2", "TLSv1.1"); below 1.2
    OpenSSL's security level is lowered so that the old versions work at all
    (a destination that can only do old TLS is what the test wants)."""
    if cert is None:
        ctx = ssl_server_context(env)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert[0], cert[1])
    if tls_max is not None:
        version = getattr(ssl.TLSVersion, tls_max.replace(".", "_"))
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = version
    return ctx


def make_certs(directory=CERT_CACHE):
    """Run scripts/mkcert once into directory (shared by all tests, under a
    lock: mkcert is not safe against itself running in parallel)."""
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with open(directory + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(directory, "ca.pem")):
            if not os.path.exists(MKCERT):
                fail("scripts/mkcert is missing")
            r = subprocess.run([MKCERT, directory], capture_output=True, text=True)
            check(r.returncode == 0, "mkcert failed: %s%s" % (r.stdout, r.stderr))
    return directory


def _ids(user):
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def _chown(path, user):
    if is_root():
        uid, gid = _ids(user)
        os.chown(path, uid, gid)


# -- the environment -----------------------------------------------------------
class Env:
    def __init__(self, name):
        self.name = name
        self.dir = None
        self.certs = None
        self._cleanups = []          # callables, run in reverse order
        self._mailwards = []
        self._count = {}
        self._old_sigterm = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="mwtest-%s-" % self.name)
        # Postfix's delivery agents and mailward after its privilege drop
        # (nobody) must be able to reach what is inside.
        os.chmod(self.dir, 0o755)
        self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self.certs = make_certs()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        print("mwtest: %s in %s" % (self.name, self.dir), flush=True)
        return self

    @staticmethod
    def _on_sigterm(signum, frame):
        print("mwtest: SIGTERM, cleaning up", flush=True)
        raise SystemExit(143)

    def _next(self, kind):
        n = self._count.get(kind, 0) + 1
        self._count[kind] = n
        return n

    def on_exit(self, fn):
        """Run fn() when the environment is left (reverse order)."""
        self._cleanups.append(fn)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def __exit__(self, etype, evalue, tb):
        failed = etype is not None and not (etype is SystemExit and evalue.code in (0, None))
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:       # keep cleaning up
                print("mwtest: cleanup error: %r" % (e,), flush=True)
        # A sanitizer report anywhere fails the test, even one that passed.
        if not failed:
            for mw in self._mailwards:
                rep = mw.sanitizer_report()
                if rep:
                    print("FAIL: sanitizer report in mailward's log (%s):\n%s" % (mw.logfile, rep))
                    failed = True
            if failed:
                self._finish(True)
                raise Failure(1)
        self._finish(failed)
        return False

    def _finish(self, failed):
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self.dir is None:
            return
        if failed or os.environ.get("MWTEST_KEEP"):
            print("mwtest: kept %s" % self.dir, flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- processes ----------------------------------------------------------
    def spawn(self, argv, log=None, **kw):
        """Start a process in its own process group; it (and its group) is
        killed when the environment is left. Output to log (a path) if given."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True, **kw)
        if log:
            out.close()
        self.on_exit(lambda: kill_group(p))
        return p

    # -- servers ------------------------------------------------------------
    def recorder(self, port=None, tls=None, **kw):
        """An aiosmtpd backend that records what it receives. tls: None,
        "starttls" (offer STARTTLS with the test server certificate) or
        "implicit". Other keywords: see Recorder."""
        r = Recorder(self, port=port, tls=tls, **kw)
        self.on_exit(r.stop)
        return r

    def postfix(self, identity="xclient", **kw):
        """A private Postfix instance; identity: "xclient", "proxy" or None;
        netns="NAME" runs it inside that network namespace (see NetEnv)."""
        pf = Postfix(self, identity=identity, **kw)
        self.on_exit(pf.stop)
        pf.start()
        return pf

    def sendmail(self, **kw):
        """A private Sendmail instance (see Sendmail), started."""
        sm = Sendmail(self, **kw)
        self.on_exit(sm.stop)
        sm.start()
        return sm

    def netns(self, hosts=("192.0.2.10",)):
        """Network namespaces for outbound tests: a sender and one
        destination per address in hosts; see NetEnv. Skips without root."""
        return NetEnv(self, hosts)

    def smtp_sink(self, port=None, args=()):
        """Postfix's smtp-sink on 127.0.0.1 (accepts and discards mail)."""
        return SmtpSink(self, port=port, args=args)

    def mailward_config(self, listeners, globals=None):
        """Write a mailward.conf (see Mailward) without starting mailward.
        Returns (path, listeners as written)."""
        # Names of their own: mailward() counts its files apart.
        n = self._next("mwconf")
        return write_config(self, self.path("mailward-conf-%d.conf" % n), listeners,
                            globals, self.path("alerts-conf-%d.json" % n))

    def mailward(self, listeners, globals=None, args=(), wait=True, binary=None, netns=None,
                 wrap=()):
        """Write a configuration and start mailward on it; see Mailward.
        netns: run it inside that network namespace (see NetEnv); wrap: a
        command that runs it (argv before mailward's, which it must exec)."""
        mw = Mailward(self, listeners, globals or {}, args, binary or MAILWARD, netns=netns,
                      wrap=wrap)
        self._mailwards.append(mw)
        self.on_exit(mw.kill)
        mw.start(wait)
        return mw


def kill_group(p, grace=3.0):
    """SIGTERM p's process group, then SIGKILL whatever is left."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


# -- mailward ---------------------------------------------------------------------
def _conf_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def write_config(env, path, listeners, globals, alert_log):
    """mailward.conf: [mailward] from globals, one section per listener.

    Filled in unless given: listen (127.0.0.1:<free port>), cert and key
    (env.certs/server.pem/.key, unless accept_tls = none), forward_ca
    (env.certs/ca.pem when forward_tls is not none, unless ca_file, its
    other name, is given); in [mailward]: user
    (nobody when running as root), alert_log (in env.dir), drain_timeout
    (10). A value of None leaves the key out; a list writes the key once
    per item, in order (cert and key may come again)."""
    g = {"alert_log": alert_log, "drain_timeout": 10}
    if is_root():
        g["user"] = "nobody"
    g.update(globals or {})
    out = ["# written by mwtest for %s" % env.name, "[mailward]"]
    out += ["%s = %s" % (k, _conf_value(v)) for k, v in g.items() if v is not None]
    written = {}
    for name, opts in listeners.items():
        o = dict(opts)
        if "listen" not in o:
            o["listen"] = "127.0.0.1:%d" % free_port()
        if o.get("accept_tls", "starttls") != "none":
            o.setdefault("cert", os.path.join(env.certs, "server.pem"))
            o.setdefault("key", os.path.join(env.certs, "server.key"))
        if o.get("forward_tls", "none") != "none" and "ca_file" not in o:
            o.setdefault("forward_ca", os.path.join(env.certs, "ca.pem"))
        o = {k: v for k, v in o.items() if v is not None}
        written[name] = o
        out += ["", "[%s]" % name] + ["%s = %s" % (k, _conf_value(one)) for k, v in o.items()
                                      for one in (v if isinstance(v, list) else [v])]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path, written


class Mailward:
    """build-test/mailward on a written configuration.

    mw.port(name), mw.addr(name) -> (host, port), mw.alerts(), mw.log(),
    mw.stop(), mw.pid, mw.conf (the file), mw.listeners (what was written)."""

    def __init__(self, env, listeners, globals, args, binary, netns=None, wrap=()):
        self.env = env
        self.netns = netns
        self.wrap = list(wrap)
        n = env._next("mailward")
        self.n = n
        self.binary = binary
        self.alert_log = globals.get("alert_log", env.path("alerts-%d.json" % n))
        self.conf, self.listeners = write_config(
            env, env.path("mailward-%d.conf" % n), listeners, globals,
            env.path("alerts-%d.json" % n))
        self.logfile = env.path("mailward-%d.log" % n)
        self.args = list(args)
        self.proc = None
        self.pid = None
        self.returncode = None
        g = {"drain_timeout": 10}
        g.update(globals)
        try:
            self.drain_timeout = float(g.get("drain_timeout") or 30)
        except ValueError:
            self.drain_timeout = 30
        self.logs_here = g.get("log", "stderr") != "syslog"
        try:
            self.workers = int(g.get("workers") or 0)
        except ValueError:
            self.workers = 0

    def start(self, wait=True):
        if not os.access(self.binary, os.X_OK):
            fail("%s is not built (make BUILD=build-test ... build-test/mailward)" % self.binary)
        argv = [self.binary, "-c", self.conf] + self.args
        if os.environ.get("MWTEST_DEBUG") and "-d" not in argv:
            argv.append("-d")
        envv = dict(os.environ)
        envv.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        envv.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        argv = self.wrap + argv
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.proc = self.env.spawn(argv, log=self.logfile, env=envv, cwd=self.env.dir)
        self.pid = self.proc.pid
        if not wait:
            return
        ports = [self.port(name) for name in self.listeners]
        missing = wait_listening(ports, 30, alive=lambda: self.proc.poll() is None,
                                 pid=self.proc.pid if self.netns else None)
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            fail("mailward exited with status %s at start-up; its log:\n%s"
                 % (self.returncode, self.log()))
        check(not missing, "mailward not listening on %r after 30 s; its log:\n%s"
              % (missing, self.log()))
        # The sockets listen once bound, as root; the privilege drop, the
        # signal handlers and the metrics file come a moment later. Wait for
        # the start line (every worker's, with workers), unless the log goes
        # to syslog: then there is none here to wait for.
        if self.logs_here:
            wait_for(lambda: self.proc.poll() is not None or
                     len(re.findall(r" event=(?:worker_)?start ", self.log())) >=
                     max(1, self.workers), 10)

    def port(self, name):
        return self.addr(name)[1]

    def addr(self, name):
        """(host, port) of the listener's (first) listen address."""
        return split_hostport(self.listeners[name]["listen"].replace(",", " ").split()[0])

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def alerts(self):
        """Alert log entries (complete JSON lines) as dicts."""
        try:
            with open(self.alert_log, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        out = []
        for line in data.split("\n")[:-1]:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    fail("alert log line is not JSON: %r" % line)
        return out

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout):
        """Wait for exit; returns the exit status or None."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def sanitizer_report(self):
        text = self.log()
        for m in SANITIZER_MARKERS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, text.rfind("\n", 0, max(0, i - 2000)) + 1):][:8000]
        return None

    def stop(self, timeout=None):
        """SIGTERM; wait for the drain (drain_timeout + 15 s); fail unless
        mailward exited 0 with no sanitizer report. Returns its log."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        limit = timeout if timeout is not None else self.drain_timeout + 15
        rc = self.wait(limit)
        if rc is None:
            kill_group(self.proc)
            fail("mailward did not exit within %.0f s of SIGTERM; its log:\n%s"
                 % (limit, self.log()[-6000:]))
        rep = self.sanitizer_report()
        check(rep is None, "sanitizer report in mailward's log:\n%s" % rep)
        check(rc == 0, "mailward exited with status %d after SIGTERM; its log:\n%s"
              % (rc, self.log()[-6000:]))
        return self.log()

    def kill(self):
        if self.proc is not None:
            kill_group(self.proc)
            self.returncode = self.proc.returncode


def read_metrics(path):
    """metrics_file's samples: {"name{labels}": value}."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def run_mailward(args, timeout=30, **kw):
    """Run mailward with args to completion (for -t, -V, -h and start-up
    refusals). Returns subprocess.CompletedProcess with text stdout/stderr."""
    check(os.access(MAILWARD, os.X_OK), "%s is not built" % MAILWARD)
    envv = dict(os.environ)
    envv.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    return subprocess.run([MAILWARD] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=envv, **kw)


# -- the recorder (aiosmtpd) ------------------------------------------------------
class Message:
    """One message the recorder accepted."""

    def __init__(self, mail_from, rcpt_tos, data, peer, helo, xclient,
                 proxy=None, tls=None, mail_options=(), rcpt_options=()):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data
        self.peer = peer
        self.helo = helo
        self.xclient = xclient
        self.proxy = proxy
        self.tls = tls
        self.mail_options = mail_options
        self.rcpt_options = rcpt_options

    def __repr__(self):
        return ("<Message from=%r to=%r helo=%r xclient=%r %d bytes: %r>"
                % (self.mail_from, self.rcpt_tos, self.helo, self.xclient,
                   len(self.data), self.data[:60]))


def _xtext_decode(s):
    out, i = "", 0
    while i < len(s):
        if s[i] == "+" and i + 2 < len(s) + 0 and len(s[i + 1:i + 3]) == 2:
            try:
                out += chr(int(s[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out += s[i]
        i += 1
    return out


def _aiosmtpd():
    try:
        import aiosmtpd.controller
        import aiosmtpd.smtp
    except ImportError:
        skip("aiosmtpd is not importable by %s (use /usr/bin/python3, apt-get install "
             "python3-aiosmtpd)" % sys.executable)
    return aiosmtpd


class Recorder:
    """aiosmtpd (real software) on 127.0.0.1:port recording:
      messages  list of Message (envelope, exact message bytes, HELO name,
                XCLIENT attributes, PROXY data, peer)
      commands  every raw command line received (bytes, line end included),
                in order, over all connections; DATA content is not included
      sessions  number of connections accepted
      closed    number of them that have ended
    Options: tls None|"starttls"|"implicit"; xclient=True adds a small XCLIENT
    extension (a fixture: aiosmtpd has none); proxy=True expects a PROXY
    header (aiosmtpd's own support, v1 and v2); hostname (greeting name,
    default "recorder.test"); reply: the reply to the end of data; no_ehlo:
    EHLO gets 502, as from a server that knows only HELO (a fixture: aiosmtpd
    answers EHLO); defer_once: addresses whose first RCPT gets 450 (later
    ones are taken), as from a mailbox that is busy for a while; host:
    the address to listen on (default 127.0.0.1); cert: (certfile, keyfile)
    instead of the test server certificate; other keywords go to aiosmtpd's
    SMTP class (e.g. data_size_limit)."""

    def __init__(self, env, port=None, tls=None, xclient=False, proxy=False,
                 hostname="recorder.test", reply=None, host="127.0.0.1", cert=None,
                 tls_max=None, no_ehlo=False, defer_once=(), **smtp_kw):
        aio = _aiosmtpd()
        self.env = env
        self.port = port or free_port()
        self.tls = tls
        self.xclient = xclient
        self.messages = []
        self.commands = []
        self.sessions = 0
        self.closed = 0              # sessions that have ended
        self.lock = threading.Lock()
        self._reply = reply
        self._no_ehlo = no_ehlo
        self._defer_once = {a.lower() for a in defer_once}
        kw = dict(smtp_kw)
        if proxy:
            kw["proxy_protocol_timeout"] = 10
        ssl_ctx = None
        if tls == "starttls":
            kw["tls_context"] = _server_context(env, cert, tls_max)
        elif tls == "implicit":
            ssl_ctx = _server_context(env, cert, tls_max)
        elif tls is not None:
            raise ValueError("tls must be None, 'starttls' or 'implicit'")
        SMTP = _recording_smtp_class(aio.smtp.SMTP)
        rec = self

        class _Controller(aio.controller.Controller):
            def factory(self):
                return SMTP(self.handler, recorder=rec, **self.SMTP_kwargs)

            def _trigger_server(self):
                # aiosmtpd's start() connects once to make sure the factory
                # works; that connection is not a session to record.
                rec._trigger = True
                try:
                    super()._trigger_server()
                finally:
                    rec._trigger = False

        self._trigger = False
        self.controller = _Controller(_RecordingHandler(self), hostname=host,
                                      port=self.port, ssl_context=ssl_ctx,
                                      server_hostname=hostname, **kw)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            try:
                self.controller.stop()
            finally:
                self.controller = None

    def wait_messages(self, n, timeout=10):
        """Wait until at least n messages arrived; returns the messages (maybe
        fewer than n after the timeout)."""
        end = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < end:
            time.sleep(0.05)
        return list(self.messages)

    def command_strings(self):
        """commands as str without line ends."""
        return [c.decode("utf-8", "replace").rstrip("\r\n") for c in self.commands]


class _RecordingHandler:
    def __init__(self, rec):
        self.rec = rec

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if self.rec._no_ehlo:
            return ["502 5.5.2 Error: command not recognized"]
        session.host_name = hostname
        if server._mw_xclient_enabled:
            responses.insert(-1, "250-XCLIENT ADDR PORT NAME PROTO HELO LOGIN DESTADDR DESTPORT")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        return "250 %s" % server.hostname

    async def handle_PROXY(self, server, session, envelope, proxy_data):
        return True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.rec.lock:
            if address.lower() in self.rec._defer_once:
                self.rec._defer_once.discard(address.lower())
                return "450 4.2.1 <%s>: mailbox busy, try again later" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        m = Message(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
                    session.peer, session.host_name,
                    dict(server._mw_xclient) if server._mw_xclient is not None else None,
                    proxy=getattr(session, "proxy_data", None),
                    tls=session.ssl is not None,
                    mail_options=list(envelope.mail_options),
                    rcpt_options=list(envelope.rcpt_options))
        with self.rec.lock:
            self.rec.messages.append(m)
            n = len(self.rec.messages)
        return self.rec._reply or "250 2.0.0 Ok: queued as REC%d" % n


def _recording_smtp_class(base):
    """aiosmtpd's SMTP, recording every command line it reads.

    aiosmtpd reads command lines with StreamReader.readuntil() (separator
    b"\\n") and DATA lines with readuntil(b"\\r\\n"); the reader's class is
    swapped for a subclass that records the former."""

    class _RecordingReader(asyncio.StreamReader):
        async def readuntil(self, separator=b"\n"):
            if separator != b"\n":
                return await super().readuntil(separator)
            try:
                line = await super().readuntil(separator)
            except asyncio.LimitOverrunError as e:
                self._mw_rec.commands.append(bytes(self._buffer[:e.consumed]) + b"[overlong]")
                raise
            except asyncio.IncompleteReadError as e:
                if e.partial:
                    self._mw_rec.commands.append(bytes(e.partial))
                raise
            self._mw_rec.commands.append(bytes(line))
            return line

    class RecordingSMTP(base):
        def __init__(self, handler, recorder, **kw):
            super().__init__(handler, **kw)
            self._mw_rec = recorder
            self._mw_xclient_enabled = recorder.xclient
            self._mw_xclient = None
            reader = self._stream_reader
            reader.__class__ = _RecordingReader
            reader._mw_rec = recorder

        def connection_made(self, transport):
            if self.transport is None and not self._mw_rec._trigger:
                self._mw_rec.sessions += 1
                self._mw_counted = True
            super().connection_made(transport)

        def connection_lost(self, error):
            if getattr(self, "_mw_counted", False):
                self._mw_counted = False
                self._mw_rec.closed += 1
            super().connection_lost(error)

        async def smtp_XCLIENT(self, arg):
            """Postfix's XCLIENT, minimally: attributes recorded, the session
            reset, "220" greeting in reply (fixture, not aiosmtpd)."""
            if not self._mw_xclient_enabled:
                await self.push('500 Error: command "XCLIENT" not recognized')
                return
            if not arg:
                await self.push("501 5.5.4 Syntax: XCLIENT attribute=value...")
                return
            attrs = dict(self._mw_xclient or {})
            for item in arg.split():
                k, sep, v = item.partition("=")
                if not sep:
                    await self.push("501 5.5.4 Bad XCLIENT attribute syntax: %s" % item)
                    return
                attrs[k.upper()] = _xtext_decode(v)
            self._mw_xclient = attrs
            self.session.host_name = None
            self.session.extended_smtp = False
            self._set_rset_state()
            await self.push("220 %s ESMTP %s" % (self.hostname, self.__ident__))

    return RecordingSMTP


# -- Postfix ----------------------------------------------------------------------
POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix instance (real software) under env.dir/postfix-N:
    its own config_directory (etc), queue_directory (queue), data_directory
    (data), maillog_file (maillog) and virtual Maildirs (mail/<local>/) for
    the addresses <users>@test.example (Postfix.USERS by default), delivered
    as nobody; nothing is ever delivered elsewhere.  Its smtpd listens on
    127.0.0.1:pf.port and trusts XCLIENT (identity="xclient") or requires a
    PROXY header (identity="proxy", haproxy mode, v1 or v2) from 127.0.0.0/8.

    files={"sasl/smtpd.conf": text, ...} writes more files under etc (before
    Postfix starts), for the options in smtpd_options or main that name them.

    pf.wait_mailbox(addr, n) -> list of message bytes (Maildir files, LF line
    ends), pf.maillog() -> text, pf.wait_maillog(text) -> bool."""

    USERS = ("user", "alice", "bob", "carol", "dave", "b", "c", "rcpt", "postmaster")

    def __init__(self, env, identity="xclient", port=None, hostname="pf.test.example",
                 smtpd_options=None, main=None, users=USERS, netns=None, files=None):
        if identity not in ("xclient", "proxy", None):
            raise ValueError("identity must be 'xclient', 'proxy' or None")
        if not shutil.which("postfix") and not os.path.exists("/usr/sbin/postfix"):
            skip("postfix is not installed")
        if not is_root():
            skip("a private Postfix instance needs root")
        self.env = env
        self.identity = identity
        self.netns = netns            # run inside this network namespace (NetEnv)
        self.port = port or free_port()
        self.n = env._next("postfix")
        self.dir = env.path("postfix-%d" % self.n)
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.mail = os.path.join(self.dir, "mail")
        self.logfile = os.path.join(self.dir, "maillog")
        self.hostname = hostname
        self.started = False
        for d in (self.dir, self.conf, self.queue, self.data, self.mail):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        _chown(self.data, "postfix")
        _chown(self.mail, "nobody")
        uid, gid = _ids("nobody")
        opts = {"smtpd_upstream_proxy_timeout": "10s"}
        if identity == "xclient":
            opts["smtpd_authorized_xclient_hosts"] = "127.0.0.0/8"
        elif identity == "proxy":
            opts["smtpd_upstream_proxy_protocol"] = "haproxy"
        opts.update(smtpd_options or {})
        master = "127.0.0.1:%d inet n - n - - smtpd\n" % self.port
        master += "".join("  -o %s=%s\n" % kv for kv in opts.items())
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master + POSTFIX_SERVICES)
        with open(os.path.join(self.conf, "vmailbox"), "w") as f:
            f.write("".join("%s@test.example %s/\n" % (u, u) for u in users))
        for name, text in (files or {}).items():
            path = os.path.join(self.conf, name)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        cfg = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": hostname,
            "mydomain": "pf.test.example",
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": self.logfile,
            "maillog_file_prefixes": self.dir,
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_banner": "$myhostname ESMTP Postfix",
            "virtual_mailbox_domains": "test.example",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "texthash:" + os.path.join(self.conf, "vmailbox"),
            "virtual_uid_maps": "static:%d" % uid,
            "virtual_gid_maps": "static:%d" % gid,
            "virtual_minimum_uid": "1",
            "message_size_limit": "104857600",
            "virtual_mailbox_limit": "0",
            # Nothing leaves the instance (bounces included).
            "default_transport": "error:no outside delivery in mwtest",
            "relay_transport": "error:no outside delivery in mwtest",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "queue_run_delay": "10s",
            "minimal_backoff_time": "10s",
            # One log record per message with the client, its HELO name,
            # sender and recipient (access(5) INFO action).
            "smtpd_data_restrictions": "check_client_access static:INFO",
        }
        cfg.update(main or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("# written by mwtest\n")
            f.write("".join("%s = %s\n" % kv for kv in cfg.items()))

    def _postfix(self, *args, timeout=60):
        pre = ["ip", "netns", "exec", self.netns] if self.netns else []
        return subprocess.run(pre + ["postfix", "-c", self.conf] + list(args), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self):
        r = self._postfix("check")
        check(r.returncode == 0, "postfix check failed (%s): %s%s"
              % (self.conf, r.stdout, r.stderr))
        r = self._postfix("start")
        if r.returncode != 0:
            fail("postfix start failed (%s): %s%s\n%s"
                 % (self.conf, r.stdout, r.stderr, self.maillog()))
        self.started = True
        pid = None
        if self.netns:
            end = time.monotonic() + 20
            while pid is None and time.monotonic() < end:
                pid = self.master_pid()
                time.sleep(0.05)
        missing = wait_listening([self.port], 20, pid=pid)
        check(not missing, "Postfix not listening on %d after 20 s; maillog:\n%s"
              % (self.port, self.maillog()))

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        try:
            self._postfix("stop", timeout=30)
        except subprocess.TimeoutExpired:
            pass
        end = time.monotonic() + 10
        while pid and time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def maillog(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_maillog(self, text, timeout=10):
        """Wait until text appears in the maillog; True if it did."""
        end = time.monotonic() + timeout
        while text not in self.maillog():
            if time.monotonic() > end:
                return False
            time.sleep(0.1)
        return True

    def mailbox(self, addr):
        """Paths of the messages delivered to addr (oldest first)."""
        local = addr.split("@", 1)[0].lower()
        box = os.path.join(self.mail, local)
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(box, sub)
            if os.path.isdir(d):
                files += [os.path.join(d, f) for f in os.listdir(d)]
        return sorted(files, key=lambda p: (os.stat(p).st_mtime, p))

    def wait_mailbox(self, addr, n=1, timeout=30):
        """Wait until addr's Maildir holds at least n messages; returns their
        bytes (maybe fewer than n after the timeout)."""
        end = time.monotonic() + timeout
        while len(self.mailbox(addr)) < n and time.monotonic() < end:
            time.sleep(0.1)
        out = []
        for p in self.mailbox(addr):
            with open(p, "rb") as f:
                out.append(f.read())
        return out


SENDMAIL_ROOT = os.path.join(REPO, "build", "sendmail", "root")


class Sendmail:
    """A private Sendmail (real software: Debian's sendmail-bin, unpacked by
    scripts/fetch-sendmail under build/sendmail, never installed) under
    env.dir/sendmail-N: a sendmail.cf made by sendmail-cf's m4 macros from
    a small .mc, its own queue. It listens on 127.0.0.1:sm.port as host
    sm.test.example, accepts mail for relay_domains (and whatever its rules
    let a client relay) and relays every message to smarthost, a (host,
    port) such as a Recorder's; nothing else leaves it.

    It runs as root in a mount and UTS namespace of its own (unshare): its
    host name is sm.test.example and it reads /etc/hosts and
    /etc/resolv.conf of its own (names for 127.0.0.1 and, in hosts, any
    extra lines; the resolver 127.0.0.1 with one short try), so that it
    never waits on or asks a DNS server elsewhere. sm.queue() lists the
    messages it holds (sendmail -bp)."""

    def __init__(self, env, smarthost, relay_domains=("rcpt.test",), hosts=(), port=None):
        binary = os.path.join(SENDMAIL_ROOT, "usr", "libexec", "sendmail", "sendmail")
        if not os.path.exists(binary):
            skip("no Sendmail in build/sendmail (scripts/fetch-sendmail, run by make test)")
        if not is_root():
            skip("a private Sendmail instance needs root")
        if not shutil.which("m4"):
            skip("m4 is not installed")
        self.env = env
        self.binary = binary
        self.port = port or free_port()
        self.n = env._next("sendmail")
        self.dir = env.path("sendmail-%d" % self.n)
        self.cf = os.path.join(self.dir, "sendmail.cf")
        self.proc = None
        for d, mode in (("", 0o755), ("mqueue", 0o700), ("clientmqueue", 0o770)):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
            os.chmod(os.path.join(self.dir, d), mode)
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 sm.test.example sm\n"
                    "::1 localhost sm.test.example sm\n" + "".join(l + "\n" for l in hosts))
        with open(os.path.join(self.dir, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        with open(os.path.join(self.dir, "service.switch"), "w") as f:
            f.write("hosts files\naliases files\n")
        d = self.dir
        mc = ["divert(-1)", "divert(0)dnl", "OSTYPE(`linux')dnl"]
        mc += ["define(`%s', `%s')dnl" % kv for kv in (
            ("confDOMAIN_NAME", "sm.test.example"),
            ("QUEUE_DIR", os.path.join(d, "mqueue")),
            ("MSP_QUEUE_DIR", os.path.join(d, "clientmqueue")),
            ("STATUS_FILE", os.path.join(d, "statistics")),
            ("ALIAS_FILE", ""),
            ("confHELP_FILE", ""),
            ("confPID_FILE", os.path.join(d, "sendmail.pid")),
            ("confSERVICE_SWITCH_FILE", os.path.join(d, "service.switch")),
            ("confTO_IDENT", "0"),
            ("confDONT_PROBE_INTERFACES", "true"),
            ("confDELIVERY_MODE", "background"),
            ("SMART_HOST", "[%s]" % smarthost[0]),
            ("RELAY_MAILER_ARGS", "TCP $h %d" % smarthost[1]),
            ("ESMTP_MAILER_ARGS", "TCP $h %d" % smarthost[1]))]
        mc += ["FEATURE(`nocanonify')dnl", "FEATURE(`accept_unresolvable_domains')dnl"]
        mc += ["RELAY_DOMAIN(`%s')dnl" % r for r in relay_domains]
        mc += ["DAEMON_OPTIONS(`Family=inet, Name=MTA, Addr=127.0.0.1, Port=%d')dnl"
               % self.port, "MAILER(`smtp')dnl"]
        with open(os.path.join(d, "sendmail.mc"), "w") as f:
            f.write("\n".join(mc) + "\n")
        cfdir = os.path.join(SENDMAIL_ROOT, "usr", "share", "sendmail", "cf") + "/"
        with open(self.cf, "w") as out:
            r = subprocess.run(["m4", "-D_CF_DIR_=" + cfdir, cfdir + "m4/cf.m4",
                                os.path.join(d, "sendmail.mc")], stdout=out,
                               stderr=subprocess.PIPE, text=True)
        check(r.returncode == 0 and not r.stderr, "m4 for sendmail.cf: %s" % r.stderr)

    def _cmd(self, *args):
        """sendmail with args, in its own namespaces (see the class)."""
        mounts = "; ".join("mount --bind %s /etc/%s" % (os.path.join(self.dir, f), f)
                           for f in ("hosts", "resolv.conf"))
        return ["unshare", "--mount", "--uts", "sh", "-ec",
                "hostname sm.test.example; %s; exec \"$0\" \"$@\"" % mounts,
                self.binary, "-C", self.cf] + list(args)

    def start(self):
        self.out = open(os.path.join(self.dir, "output"), "wb")
        self.proc = subprocess.Popen(self._cmd("-bD"), stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        missing = wait_listening([self.port], 20, alive=lambda: self.proc.poll() is None)
        check(not missing, "Sendmail not listening on %d after 20 s (exit %r): %s"
              % (self.port, self.proc.poll(), self.output()))

    def output(self):
        with open(os.path.join(self.dir, "output"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def queue(self):
        """What sendmail -bp says of its queue."""
        r = subprocess.run(self._cmd("-bp"), capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # Delivery children are in the same process group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        self.out.close()


class SmtpSink:
    """Postfix's smtp-sink (real software) on 127.0.0.1:port."""

    def __init__(self, env, port=None, args=()):
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.path.exists(exe):
            skip("smtp-sink (postfix) is not installed")
        self.port = port or free_port()
        self.logfile = env.path("smtp-sink-%d.log" % env._next("sink"))
        argv = [exe] + (["-u", "nobody"] if is_root() else []) + list(args) + \
            ["127.0.0.1:%d" % self.port, "64"]
        self.proc = env.spawn(argv, log=self.logfile)
        missing = wait_listening([self.port], 10, alive=lambda: self.proc.poll() is None)
        check(not missing and self.proc.poll() is None,
              "smtp-sink did not start: %s" % open(self.logfile, errors="replace").read())

    def stop(self):
        kill_group(self.proc)


# -- network namespaces: the outbound test bed -------------------------------------
def _libc_setns(fd):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:          # CLONE_NEWNET
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


def _setns(fd):
    if hasattr(os, "setns"):
        os.setns(fd, os.CLONE_NEWNET)
    else:
        _libc_setns(fd)


class NetEnv:
    """Network namespaces for outbound tests (env.netns()).

    A "sender" namespace, where mailward, the client (net.smtp(), or code in
    `with net.inside():`) and an optional Postfix run, and one destination
    namespace per address in hosts (192.0.2.10, 192.0.2.11, ... by default),
    each joined to the sender by its own veth pair: the sender side has
    198.51.100.1 (2001:db8:100::1 for an IPv6 address in hosts, such as
    2001:db8::10) and a host route to the destination's address. Nothing is
    added to the host's own namespace apart from the namespaces themselves
    (named mw-<pid>-<n>-s, -d0, -d1...; the veth pairs are created inside
    them); everything is deleted when the environment is left, also on
    failure. Needs root, ip(8) and nft(8) (the test is skipped otherwise).

      net.sender, net.dests                 namespace names
      net.ns_of(addr)                       the destination namespace of addr
      net.spawn(ns, argv, log)              a process inside ns (ip netns exec)
      net.run(ns, argv)                     run to completion inside ns
      net.redirect(port, user="nobody")     nftables redirect of port 25 in the
                                            sender, by scripts/nft-redirect --install
      net.outbound(policy=..., default_level=..., **listener)
                                            mailward's outbound listener in the
                                            sender (redirected to, user nobody,
                                            state_dir owned by nobody)
      net.sending_postfix(**main)           Postfix in the sender, relaying all to
                                            [192.0.2.10]:25 without TLS of its own
      net.dest(addr, tls=..., cert=...)     aiosmtpd recorder inside a destination
      net.stripper(addr, to, mode)          the STARTTLS-stripping fixture there
      net.cert(name, sans, kind)            a leaf certificate for the test
      net.resolver(addr)                    /etc/netns/<sender>/resolv.conf naming
                                            addr: the system resolver of what
                                            runs in the sender (call it before
                                            net.outbound())
      net.dnsmasq(addr, txt, hosts)         dnsmasq (real software) answering
                                            for .test at addr:53; see DnsServer
      net.dnssec(auth, resolver, records, insecure_records, bogus)
                                            nsd serving a signed test. (and an
                                            unsigned insecure.test.) at auth:53,
                                            dnsmasq validating it at resolver:53
                                            (DANE); see DnssecZone
      net.https(addr, cert, sites)          an HTTPS server (Python's http.server
                                            and ssl) at addr:443; see HttpsServer
      net.smtp(host, port=25, ...)          smtplib.SMTP connected from the sender
      net.connect(host, port)               a socket connected from the sender
      net.add_lan()                         a "lan" namespace behind the sender,
                                            which becomes its router (TPROXY)
      net.tproxy(port)                      nftables TPROXY of the lan's port 25
                                            to mailward's port in the sender
    (smtp() and connect() take ns=net.lan to connect from the lan.)
    """

    SENDER_ADDR = "198.51.100.1"
    SENDER_ADDR6 = "2001:db8:100::1"

    def __init__(self, env, hosts=("192.0.2.10",)):
        if not is_root():
            skip("network namespaces need root")
        for tool in ("ip", "nft"):
            if not shutil.which(tool):
                skip("%s is not installed" % tool)
        self.env = env
        self.hosts = list(hosts)
        n = env._next("netns")
        self.prefix = "mw-%d-%d" % (os.getpid(), n)
        self.sender = self.prefix + "-s"
        self.dests = []
        self._by_addr = {}
        self._namespaces = []
        self._ncert = 0
        self._mw_uid = _ids("nobody")[0]
        env.on_exit(self._delete)
        self._add_ns(self.sender)
        self._ip(self.sender, "link", "set", "lo", "up")
        for i, addr in enumerate(self.hosts):
            ns = "%s-d%d" % (self.prefix, i)
            self._add_ns(ns)
            self.dests.append(ns)
            self._by_addr[addr] = ns
            ifs, ifd = "d%d" % i, "eth0"
            # Created inside the sender, its peer inside the destination: the
            # pair never exists in the host's namespace.
            self._ip(self.sender, "link", "add", ifs, "type", "veth", "peer", "name", ifd,
                     "netns", ns)
            self._ip(ns, "link", "set", "lo", "up")
            # IPv6 addresses without duplicate address detection, usable at once.
            v6 = ":" in addr
            src, plen, nodad = ((self.SENDER_ADDR6, "/128", ["nodad"]) if v6 else
                                (self.SENDER_ADDR, "/32", []))
            self._ip(self.sender, "addr", "add", src + plen, "dev", ifs, *nodad)
            self._ip(self.sender, "link", "set", ifs, "up")
            self._ip(self.sender, "route", "add", addr + plen, "dev", ifs, "src", src)
            self._ip(ns, "addr", "add", addr + plen, "dev", ifd, *nodad)
            self._ip(ns, "link", "set", ifd, "up")
            self._ip(ns, "route", "add", src + plen, "dev", ifd, "src", addr)
        print("mwtest: namespaces %s (%s)" % (self.sender, ", ".join(
            "%s=%s" % kv for kv in self._by_addr.items())), flush=True)

    # -- plumbing -----------------------------------------------------------------
    def _add_ns(self, name):
        r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        if r.returncode != 0:
            if "Operation not permitted" in r.stderr:
                skip("cannot create network namespaces here: %s" % r.stderr.strip())
            fail("ip netns add %s: %s" % (name, r.stderr.strip()))
        self._namespaces.append(name)

    def _delete(self):
        for name in reversed(self._namespaces):
            # Whatever still runs inside (it should have been stopped by
            # now) keeps the namespace alive after its name is gone: kill it.
            r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            r = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
            if r.returncode != 0:
                print("mwtest: ip netns del %s: %s" % (name, r.stderr.strip()), flush=True)
        self._namespaces = []

    def _ip(self, ns, *args):
        r = subprocess.run(["ip", "-n", ns] + list(args), capture_output=True, text=True)
        check(r.returncode == 0, "ip -n %s %s: %s" % (ns, " ".join(args), r.stderr.strip()))

    def ns_of(self, addr):
        if addr in self._by_addr:
            return self._by_addr[addr]
        fail("no destination namespace has %s (hosts: %r)" % (addr, self.hosts))

    def run(self, ns, argv, **kw):
        """Run argv inside ns to completion (text output captured)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(["ip", "netns", "exec", ns] + list(argv),
                              stdin=subprocess.DEVNULL, **kw)

    def spawn(self, ns, argv, log=None, **kw):
        """Start argv inside ns (ip netns exec execs it: the Popen's pid is the
        process's own); killed, with its group, when the environment is left."""
        return self.env.spawn(["ip", "netns", "exec", ns] + list(argv), log=log, **kw)

    @contextlib.contextmanager
    def inside(self, ns=None):
        """Run the block with this thread in namespace ns (default: the
        sender). Sockets made inside stay in ns when the block is left."""
        ns = ns or self.sender
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + ns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def connect(self, host, port=25, timeout=20, ns=None):
        """A TCP socket connected from the sender namespace (or ns)."""
        with self.inside(ns):
            return socket.create_connection((host, port), timeout=timeout)

    def smtp(self, host, port=25, local_hostname="client.sender.test", timeout=20, ns=None,
             **kw):
        """smtplib.SMTP connected from the sender namespace (or ns; real
        software); s.banner is the greeting (code, text)."""
        import smtplib
        s = smtplib.SMTP(local_hostname=local_hostname, timeout=timeout, **kw)
        with self.inside(ns):
            s.banner = s.connect(host, port)
        print("banner from %s:%d: %r" % (host, port, s.banner), flush=True)
        return s

    def listening(self, ns, port, timeout=10, pid=None):
        """Wait until port listens inside ns (pid: a process in ns)."""
        if pid is None:
            r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            pids = r.stdout.split()
            if not pids:
                return False
            pid = int(pids[0])
        return not wait_listening([port], timeout, pid=pid)

    # -- a LAN behind the sender (TPROXY) --------------------------------------------
    LAN_ADDR, LAN_ROUTER = "203.0.113.2", "203.0.113.1"
    LAN_ADDR6, LAN_ROUTER6 = "2001:db8:200::2", "2001:db8:200::1"
    LAN_IF = "lan0"

    def add_lan(self):
        """A namespace <prefix>-lan with LAN_ADDR/24 and LAN_ADDR6/64, joined
        to the sender (LAN_ROUTER/24 and LAN_ROUTER6/64 on its LAN_IF) and
        routed through it: the sender becomes a router (IPv4 and IPv6
        forwarding on inside it). TPROXY only sees forwarded traffic, so its
        client must live here. Sets net.lan."""
        self.lan = self.prefix + "-lan"
        self._add_ns(self.lan)
        self._ip(self.lan, "link", "set", "lo", "up")
        self._ip(self.sender, "link", "add", self.LAN_IF, "type", "veth", "peer", "name",
                 "eth0", "netns", self.lan)
        self._ip(self.sender, "addr", "add", self.LAN_ROUTER + "/24", "dev", self.LAN_IF)
        self._ip(self.sender, "link", "set", self.LAN_IF, "up")
        self._ip(self.lan, "addr", "add", self.LAN_ADDR + "/24", "dev", "eth0")
        self._ip(self.lan, "link", "set", "eth0", "up")
        self._ip(self.lan, "route", "add", "default", "via", self.LAN_ROUTER)
        self._ip(self.sender, "addr", "add", self.LAN_ROUTER6 + "/64", "dev", self.LAN_IF,
                 "nodad")
        self._ip(self.lan, "addr", "add", self.LAN_ADDR6 + "/64", "dev", "eth0", "nodad")
        self._ip(self.lan, "-6", "route", "add", "default", "via", self.LAN_ROUTER6)
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            r = self.run(self.sender, ["sysctl", "-w", key + "=1"])
            check(r.returncode == 0, "sysctl %s in %s: %s" % (key, self.sender, r.stderr))
        return self.lan

    def tproxy(self, port, mark=1, table=100):
        """In the sender, README's TPROXY recipe: TCP to port 25 arriving
        from the lan, IPv4 and IPv6, goes by TPROXY to mailward's socket on
        port (nftables table inet mw), with the policy routing that delivers
        marked packets locally for both families, and the lan's port 25
        that would be forwarded instead is dropped (so that nothing passes
        mailward by). Skips the test when the kernel cannot do TPROXY here."""
        nft = [
            ["nft", "add", "table", "inet", "mw"],
            ["nft", "add chain inet mw pre { type filter hook prerouting priority mangle; }"],
            ["nft", "add", "rule", "inet", "mw", "pre", "iif", self.LAN_IF, "tcp", "dport",
             "25", "tproxy", "to", ":%d" % port, "meta", "mark", "set", str(mark), "accept"],
            ["nft", "add chain inet mw passby { type filter hook forward priority filter; }"],
            ["nft", "add", "rule", "inet", "mw", "passby", "iif", self.LAN_IF, "tcp", "dport",
             "25", "drop"],
        ]
        for argv in nft:
            r = self.run(self.sender, argv)
            if r.returncode != 0:
                if "tproxy" in argv:
                    skip("the kernel cannot do nftables TPROXY in a namespace here: %s"
                         % r.stderr.strip())
                fail("%s in %s: %s" % (" ".join(argv), self.sender, r.stderr.strip()))
        for family, everything in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
            self._ip(self.sender, family, "rule", "add", "fwmark", str(mark), "lookup",
                     str(table))
            self._ip(self.sender, family, "route", "add", "local", everything, "dev", "lo",
                     "table", str(table))
        r = self.run(self.sender, ["nft", "list", "ruleset"])
        self.ruleset = r.stdout
        return r.stdout

    # -- nftables -------------------------------------------------------------------
    def redirect(self, port, user="nobody"):
        """Install scripts/nft-redirect's rules in the sender: port 25 from
        anyone but user (mailward) goes to 127.0.0.1:port."""
        script = os.path.join(REPO, "scripts", "nft-redirect")
        r = self.run(self.sender, [script, "--install", "--port", str(port), "--user", user])
        check(r.returncode == 0, "nft-redirect --install failed: %s%s" % (r.stdout, r.stderr))
        r = self.run(self.sender, ["nft", "list", "ruleset"])
        self.ruleset = r.stdout
        return r.stdout

    # -- mailward --------------------------------------------------------------------
    def outbound(self, policy=None, default_level="encrypt", port=10025, name="out",
                 globals=None, redirect=True, wait=True, wrap=(), more=None, **listener):
        """mailward's outbound listener inside the sender on 127.0.0.1:port,
        with the redirect installed: accept_tls = none, require_tls = no,
        forward = original-dst, forward_tls = policy, policy = a file with
        the text policy (if given), ca_file = the test CA, default_level;
        [mailward] state_dir = a new directory owned by nobody. Other
        keywords are listener keys (None leaves a key out); more: other
        listeners (name: keys) of the same mailward; wrap: as in
        Env.mailward()."""
        n = self.env._next("outbound")
        state = self.env.path("state-%d" % n)
        os.makedirs(state)
        _chown(state, "nobody")
        os.chmod(state, 0o700)
        self.state_dir = state
        opts = {"listen": "127.0.0.1:%d" % port, "accept_tls": "none", "require_tls": "no",
                "forward": "original-dst", "forward_tls": "policy",
                "ca_file": os.path.join(self.env.certs, "ca.pem"), "forward_ca": None,
                "default_level": default_level}
        if policy is not None:
            path = self.env.path("policy-%d" % n)
            with open(path, "w") as f:
                f.write(policy)
            opts["policy"] = path
            self.policy_file = path
        opts.update(listener)
        g = {"state_dir": state}
        g.update(globals or {})
        if redirect:
            self.redirect(port)
        ls = {name: opts}
        ls.update(more or {})
        return self.env.mailward(listeners=ls, globals=g, netns=self.sender, wait=wait,
                                 wrap=wrap)

    def sending_postfix(self, relayhost="[192.0.2.10]:25", **main):
        """A private Postfix (real software) in the sender, as the sending MTA
        of the outbound tests: everything goes to relayhost over SMTP,
        smtp_tls_security_level = none (the only TLS on the way is
        mailward's). main: more main.cf settings."""
        opts = {"default_transport": "smtp", "relay_transport": "smtp",
                "relayhost": relayhost, "smtp_tls_security_level": "none",
                "smtp_connect_timeout": "10s"}
        opts.update(main)
        return self.env.postfix(identity=None, netns=self.sender, hostname="pf.sender.test",
                                main=opts)

    # -- destinations -----------------------------------------------------------------
    def dest(self, addr="192.0.2.10", port=25, tls="starttls", cert=None, listen=None,
             hostname=None, tls_max=None, auth=None, no_ehlo=False, defer_once=()):
        """An aiosmtpd recorder (real software, see Recorder) inside addr's
        namespace, listening on addr:port (or listen="127.0.0.1" for one
        behind a stripper). tls: None, "starttls" or "implicit"; cert:
        (certfile, keyfile), default the test server certificate; auth:
        "user:password", aiosmtpd's AUTH offered after STARTTLS, taking
        that login; no_ehlo, defer_once: see Recorder."""
        return DestServer(self, self.ns_of(addr), listen or addr, port, tls, cert,
                          hostname or "mx.dest.test", tls_max, auth, no_ehlo, defer_once)

    def stripper(self, addr="192.0.2.10", port=25, to=("127.0.0.1", 2525), mode="mask"):
        """test/integration/stripper.py (a fixture) at addr:port inside
        addr's namespace, forwarding to `to` there; see Stripper."""
        return Stripper(self, self.ns_of(addr), addr, port, to, mode)

    # -- DNS and HTTPS (MTA-STS) ------------------------------------------------------
    def resolver(self, addr, options="timeout:2 attempts:1"):
        """Make addr the name server of everything started in the sender
        from now on: `ip netns exec` bind-mounts /etc/netns/<sender>/resolv.conf
        over /etc/resolv.conf, so mailward (and net.run(net.sender, ...))
        must be started after this call. The file is world-readable
        (mailward resolves as nobody). /etc/netns/<sender> is removed when
        the environment is left, also on failure, and /etc/netns too when
        this call made it and it is empty by then. Returns the file's path."""
        top = "/etc/netns"
        made_top = not os.path.isdir(top)
        d = os.path.join(top, self.sender)

        def remove():
            shutil.rmtree(d, ignore_errors=True)
            if made_top:
                try:
                    os.rmdir(top)          # only if empty: other tests may use it
                except OSError:
                    pass
        self.env.on_exit(remove)
        for _ in range(3):                 # another test may remove an empty /etc/netns
            try:
                os.makedirs(d, mode=0o755, exist_ok=True)
                break
            except FileNotFoundError:
                continue
        path = os.path.join(d, "resolv.conf")
        with open(path, "w") as f:
            f.write("nameserver %s\noptions %s\n" % (addr, options))
        os.chmod(path, 0o644)
        return path

    def dnsmasq(self, addr, txt=None, hosts=None, mx=None):
        """dnsmasq (real software) inside addr's namespace, listening on
        addr:53 (UDP and TCP) and answering only from what it is given:
        txt {name: text or [text, ...]} (one TXT record per text, with no
        comma, quote or backslash in it), hosts {name: IPv4 or IPv6
        address} and mx {domain: exchange} (preference 10). Every other
        name under .test is NXDOMAIN (--local=/test/), nothing is
        forwarded. See DnsServer."""
        return DnsServer(self, self.ns_of(addr), addr, txt or {}, hosts or {}, mx=mx or {})

    def dnssec(self, auth_addr, resolver_addr, records=(), insecure_records=(), bogus=()):
        """A DNSSEC test bed (DANE): nsd (real software) at auth_addr:53
        serving the zone test., signed (ldns-keygen, ldns-signzone), and its
        unsigned child insecure.test.; and dnsmasq (real software) at
        resolver_addr:53 validating against the zone's DS as trust anchor.
        records: zone lines for test. ($ORIGIN test.), insecure_records for
        insecure.test.; bogus: lines for test. served as written but signed
        with other data, so that they are bogus. Both addresses must be
        destination hosts of this NetEnv; they are joined by a veth pair of
        their own. Point the sender at the resolver with
        net.resolver(resolver_addr, options="trust-ad edns0 ..."). See
        DnssecZone."""
        return DnssecZone(self, auth_addr, resolver_addr, records, insecure_records, bogus)

    def https(self, addr, cert, sites, port=443, delays=None, post_status=None,
              framing=None):
        """An HTTPS server inside addr's namespace at addr:port: Python's
        http.server (ThreadingHTTPServer) over ssl, with the certificate
        cert (certfile, keyfile), answering each GET by its Host header
        from sites {host: (status, content_type, body)}, after delays
        {host: seconds} if given, framed as framing {host: how} says
        (default Content-Length), and each POST with post_status. See
        HttpsServer."""
        return HttpsServer(self, self.ns_of(addr), addr, port, cert, sites, delays,
                           post_status, framing)

    # -- certificates -----------------------------------------------------------------
    def cert(self, name, sans=None, kind="valid"):
        """A leaf certificate and key in env.dir for the names sans (default
        [name]), signed by the test CA (env.certs/ca.pem). kind: "valid"
        (two years), "expired" (valid only in January 2020) or "untrusted"
        (signed by a CA made for this test, which nobody trusts).
        Returns (certfile, keyfile)."""
        return make_leaf_cert(self.env, name, sans or [name], kind)


def nsd_config(d, addr, port, zones):
    """Write d/nsd.conf for an nsd that a test runs (real software): on
    addr:port, no chroot and no user change, its files in d, the zones
    [(name, zonefile)]. Returns its path."""
    conf = os.path.join(d, "nsd.conf")
    text = """# written by mwtest
server:
    ip-address: %(addr)s
    port: %(port)d
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "%(d)s"
    database: ""
    zonelistfile: "%(d)s/zone.list"
    xfrdfile: "%(d)s/xfrd.state"
    xfrdir: "%(d)s"
    pidfile: "%(d)s/nsd.pid"
    server-count: 1
    verbosity: 2
    hide-version: yes
remote-control:
    control-enable: no
""" % {"addr": addr, "port": port, "d": d}
    for name, zonefile in zones:
        text += 'zone:\n    name: "%s"\n    zonefile: "%s"\n' % (name, zonefile)
    with open(conf, "w") as f:
        f.write(text)
    return conf


def put_file(src, dst, mode=0o644):
    """Replace dst by a copy of src, as a renewal does: a new file renamed
    over the old one (a reader sees one or the other, never half)."""
    shutil.copyfile(src, dst + ".new")
    os.chmod(dst + ".new", mode)
    os.rename(dst + ".new", dst)


def metrics_file(env, name="metrics"):
    """A metrics_file path in a directory of its own (env.dir/name) that
    mailward's user (nobody, when the test runs as root) may write to."""
    d = env.path(name)
    os.makedirs(d, exist_ok=True)
    if is_root():
        _chown(d, "nobody")
    return os.path.join(d, "mailward.prom")


def make_leaf_cert(env, name, sans, kind="valid", days=730, key="ec"):
    """See NetEnv.cert(); usable without namespaces. days: the validity of
    a valid or untrusted one; key: "ec" (P-256) or "rsa" (2048 bits)."""
    if kind not in ("valid", "expired", "untrusted"):
        raise ValueError("kind must be valid, expired or untrusted")
    n = env._next("leafcert")
    d = env.path("certs-%d-%s" % (n, kind))
    os.makedirs(d)
    base = os.path.join(d, name)

    def ossl(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
        check(r.returncode == 0, "openssl %s failed: %s%s" % (args[0], r.stdout, r.stderr))

    san = ",".join(("IP:" if all(c in "0123456789.:" for c in s) else "DNS:") + s
                   for s in sans)
    ca_pem, ca_key = os.path.join(env.certs, "ca.pem"), os.path.join(env.certs, "ca.key")
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write("""[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = %(name)s
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = %(san)s
[ ca ]
default_ca = test_ca
[ test_ca ]
database = %(d)s/index.txt
new_certs_dir = %(d)s
serial = %(d)s/serial
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
[ any_policy ]
commonName = supplied
""" % {"name": name, "san": san, "d": d})
    with open(os.path.join(d, "index.txt"), "w"):
        pass
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("%04X\n" % (0x2000 + n))
    if kind == "untrusted":
        ca_pem, ca_key = os.path.join(d, "otherca.pem"), os.path.join(d, "otherca.key")
        ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", ca_key)
        ossl("req", "-new", "-x509", "-config", cnf, "-key", ca_key,
             "-subj", "/CN=untrusted test CA", "-days", "3650", "-sha256",
             "-extensions", "ca_ext", "-out", ca_pem)
    if key == "rsa":
        ossl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", base + ".key")
    else:
        ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", base + ".key")
    ossl("req", "-new", "-config", cnf, "-key", base + ".key", "-subj", "/CN=" + name,
         "-out", base + ".csr")
    if kind == "expired":
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"]
    else:
        dates = ["-days", str(days)]
    ossl("ca", "-batch", "-notext", "-config", cnf, "-cert", ca_pem, "-keyfile", ca_key,
         "-in", base + ".csr", "-out", base + ".pem", "-extensions", "leaf_ext",
         "-extfile", cnf, *dates)
    os.chmod(base + ".pem", 0o644)
    os.chmod(base + ".key", 0o600)
    return base + ".pem", base + ".key"


def _read_text(path):
    """A log file's text so far ("" while it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _wait_file(path, timeout, alive=None):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end or (alive and not alive()):
            return False
        time.sleep(0.05)
    return True


class DestServer:
    """A recorder (aiosmtpd, real software) running as its own process,
    test/integration/destserver.py, inside a destination namespace. It
    writes what it received to a state file; the attributes read it:
      messages    list of Message (mail_from, rcpt_tos, data, peer, helo, tls)
      commands    raw command lines (bytes), command_strings() as str
      sessions    connections accepted
      wait_messages(n, timeout)
      wait_idle()  wait until every connection has ended (then the state is
                  complete: call it before asserting that nothing arrived)
    Attributes: ns, addr, port, tls, log (its output)."""

    def __init__(self, net, ns, addr, port, tls, cert, hostname, tls_max=None, auth=None,
                 no_ehlo=False, defer_once=()):
        self.net, self.ns, self.addr, self.port, self.tls = net, ns, addr, port, tls
        n = net.env._next("dest")
        self.state = net.env.path("dest-%d.json" % n)
        self.log = net.env.path("dest-%d.log" % n)
        argv = ["/usr/bin/python3",
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "destserver.py"),
                "--state", self.state, "--addr", addr, "--port", str(port),
                "--hostname", hostname]
        if tls:
            argv += ["--tls", tls]
        if tls_max:
            argv += ["--tls-max", tls_max]
        if auth:
            argv += ["--auth", auth]
        if no_ehlo:
            argv += ["--no-ehlo"]
        for a in defer_once:
            argv += ["--defer-once", a]
        if cert:
            argv += ["--cert", cert[0], "--key", cert[1]]
        elif tls:
            argv += ["--cert", os.path.join(net.env.certs, "server.pem"),
                     "--key", os.path.join(net.env.certs, "server.key")]
        self.proc = net.spawn(ns, argv, log=self.log)
        ok = _wait_file(self.state, 20, alive=lambda: self.proc.poll() is None)
        check(ok, "destination server %s:%d did not start: %s"
              % (addr, port, self.output()))
        net.env.on_exit(self.stop)

    def output(self):
        return _read_text(self.log)

    def _read(self):
        for _ in range(20):
            try:
                with open(self.state) as f:
                    return json.load(f)
            except (OSError, ValueError):
                time.sleep(0.02)
        fail("cannot read %s" % self.state)

    @property
    def messages(self):
        import base64
        out = []
        for m in self._read()["messages"]:
            out.append(Message(m["mail_from"], m["rcpt_tos"], base64.b64decode(m["data"]),
                               tuple(m["peer"]) if m["peer"] else None, m["helo"], None,
                               tls=m["tls"], mail_options=m["mail_options"],
                               rcpt_options=m["rcpt_options"]))
        return out

    @property
    def commands(self):
        import base64
        return [base64.b64decode(c) for c in self._read()["commands"]]

    @property
    def sessions(self):
        return self._read()["sessions"]

    def check_idle(self, timeout=10):
        """wait_idle(), failing the test when a connection to the server
        outlives the client's session (mailward must end it)."""
        check(self.wait_idle(timeout), "a connection to the destination %s:%d outlived the "
              "client's session" % (self.addr, self.port))

    def wait_idle(self, timeout=10):
        """Wait until every connection the server accepted has ended and its
        state file says so: then what it recorded is complete. Call it before
        asserting that the server received nothing. Returns True if idle.
        Only a state written after this call began counts: one written before
        a session reached the server also says sessions == closed (0 == 0)."""
        start = time.time()
        end = time.monotonic() + timeout
        while True:
            st = self._read()
            if st.get("written", 0) > start and st["sessions"] == st.get("closed", -1):
                return True
            if time.monotonic() > end:
                print("mwtest: destination %s:%d not idle after %.0f s: %d sessions, %d ended"
                      % (self.addr, self.port, timeout, st["sessions"], st.get("closed", -1)),
                      flush=True)
                return False
            time.sleep(0.05)

    def command_strings(self):
        return [c.decode("utf-8", "replace").rstrip("\r\n") for c in self.commands]

    def envelope_commands(self):
        """The MAIL, RCPT, DATA, BDAT lines received (must be none when
        mailward refused every recipient)."""
        return [c for c in self.command_strings()
                if c.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA", "BDAT")]

    def wait_messages(self, n, timeout=10):
        end = time.monotonic() + timeout
        while True:
            msgs = self.messages
            if len(msgs) >= n or time.monotonic() > end:
                return msgs
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None


class Stripper:
    """test/integration/stripper.py (a fixture, NOT real software): a
    man-in-the-middle between mailward and a destination. mode (read again
    for every connection; set_mode() changes it):
      pass    forward everything untouched
      mask    rewrite the STARTTLS capability to XXXXXXXA
      strip   delete the STARTTLS line from the EHLO reply
      refuse  answer STARTTLS with 454 itself (the server never sees it)
      inject  pass STARTTLS on, send "250 injected" right after the server's 220
    Attributes: sessions (connections taken), events() (its log lines)."""

    MODES = ("pass", "mask", "strip", "refuse", "inject")

    def __init__(self, net, ns, addr, port, to, mode):
        n = net.env._next("stripper")
        self.net = net
        self.mode_file = net.env.path("stripper-%d.mode" % n)
        self.events_file = net.env.path("stripper-%d.events" % n)
        self.log = net.env.path("stripper-%d.log" % n)
        self.set_mode(mode)
        ready = net.env.path("stripper-%d.ready" % n)
        argv = ["/usr/bin/python3",
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "stripper.py"),
                "--listen", "%s:%d" % (addr, port), "--to", "%s:%d" % tuple(to),
                "--mode-file", self.mode_file, "--events", self.events_file,
                "--ready", ready]
        self.proc = net.spawn(ns, argv, log=self.log)
        ok = _wait_file(ready, 20, alive=lambda: self.proc.poll() is None)
        check(ok, "stripper did not start: %s" % open(self.log, errors="replace").read())
        net.env.on_exit(self.stop)

    def set_mode(self, mode):
        if mode not in self.MODES:
            raise ValueError("unknown stripper mode %r" % mode)
        tmp = self.mode_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(mode + "\n")
        os.rename(tmp, self.mode_file)

    def events(self):
        try:
            with open(self.events_file, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None


class DnsServer:
    """dnsmasq (real software; Debian's dnsmasq-base) as an authoritative-only
    name server for .test inside a destination namespace, run by
    NetEnv.dnsmasq(): no configuration file, no /etc/hosts, no upstream
    servers, every query logged (--log-queries) to self.log. options
    replace --local=/test/ (DnssecZone makes it a validating resolver).
      queries()          [(type, name)] of every query received, in order
                         ("TXT", "_mta-sts.example.test"), names in lower case
      count(type, name)  how often (type, name) was asked
      wait_queries(type, name, n, timeout)
                         wait until (type, name) was asked n times; the count
      stop()
    Attributes: ns, addr, log (its output), proc."""

    # dnsmasq[PID]: query[TXT] _mta-sts.example.test from 198.51.100.1
    QUERY = re.compile(r"\bquery\[(\w+)\] (\S+) from ")

    def __init__(self, net, ns, addr, txt, hosts, options=("--local=/test/",), mx=None):
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not os.path.exists(exe):
            skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
        self.net, self.ns, self.addr = net, ns, addr
        self.log = net.env.path("dnsmasq-%d.log" % net.env._next("dnsmasq"))
        argv = [exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", "--listen-address=" + addr,
                "--bind-interfaces", "--port=53", "--pid-file", "--user=nobody",
                "--group=nogroup", "--log-queries", "--log-facility=-"] + list(options)
        for name, texts in txt.items():
            for t in [texts] if isinstance(texts, str) else texts:
                # On dnsmasq's command line quotes are kept as text and a
                # comma starts another character-string of the record.
                if any(c in t for c in ',"\\'):
                    raise ValueError("TXT text with a comma, quote or backslash: %r" % t)
                argv.append("--txt-record=%s,%s" % (name, t))
        for name, ip in hosts.items():
            argv.append("--host-record=%s,%s" % (name, ip))
        for domain, exchange in (mx or {}).items():
            argv.append("--mx-host=%s,%s,10" % (domain, exchange))
        self.proc = net.spawn(ns, argv, log=self.log)
        net.env.on_exit(self.stop)
        ok = net.listening(ns, 53, timeout=10, pid=self.proc.pid)
        check(ok and self.proc.poll() is None, "dnsmasq did not start on %s:53: %s"
              % (addr, self.output()))

    def output(self):
        return _read_text(self.log)

    def queries(self):
        return [(m.group(1), m.group(2).lower().rstrip("."))
                for m in self.QUERY.finditer(self.output())]

    def count(self, qtype, name):
        """How often (qtype, name) was asked."""
        return len([q for q in self.queries() if q == (qtype, name)])

    def wait_queries(self, qtype, name, n=1, timeout=5):
        """Wait up to timeout until (qtype, name) was asked n times; the count."""
        wait_for(lambda: self.count(qtype, name) >= n, timeout)
        return self.count(qtype, name)

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None


def _rr_parse(line, origin):
    """A zone line "owner [ttl] [IN] TYPE rdata" -> (owner as an absolute
    name in lower case, ttl or None, TYPE, rdata)."""
    tok = line.split()
    if len(tok) < 3:
        raise ValueError("zone line too short: %r" % line)
    owner = tok.pop(0)
    if owner == "@":
        owner = origin
    elif not owner.endswith("."):
        owner = owner + "." + origin
    ttl = None
    while tok and (tok[0].isdigit() or tok[0].upper() == "IN"):
        t = tok.pop(0)
        if t.isdigit():
            ttl = int(t)
    if len(tok) < 2:
        raise ValueError("zone line without type or data: %r" % line)
    return owner.lower(), ttl, tok[0].upper(), " ".join(tok[1:])


def _rdata_variant(rtype, rdata):
    """Other RDATA of the same type: what a bogus record is signed with."""
    import ipaddress
    if rtype in ("A", "AAAA"):
        a = ipaddress.ip_address(rdata)
        return str(a + 1 if int(a) < 2 ** a.max_prefixlen - 1 else a - 1)
    if rtype == "MX":
        pref, host = rdata.split(None, 1)
        return "%d %s" % (int(pref) + 1, host)
    if rtype == "TLSA":
        c = rdata[-1]
        return rdata[:-1] + format(int(c, 16) ^ 1, "x")
    raise ValueError("bogus records of type %s are not supported" % rtype)


class DnssecZone:
    """The DNSSEC test bed, run by NetEnv.dnssec() (for DANE, RFC 7672).

    Authoritative: nsd (real software; Debian's nsd) in the foreground (-d)
    inside auth_addr's namespace, on a configuration file in self.dir (no
    /etc/nsd, no control socket, no database), serving:
      test.           signed with a KSK and a ZSK, ECDSAP256SHA256
                      (ldns-keygen, ldns-signzone, NSEC), valid from a day
                      ago for 30 days: SOA, NS ns.test. (at auth_addr), the
                      delegation insecure.test. NS ns.insecure.test. (glue
                      auth_addr) with no DS, `records`, and `bogus`: these
                      are served as written but were signed with other
                      RDATA (an A/AAAA address plus one, an MX preference
                      plus one, a TLSA's last hex digit flipped), so their
                      RRSIG does not verify
      insecure.test.  unsigned: SOA, NS, `insecure_records`
    Zone lines are "owner [ttl] [IN] TYPE rdata", owners relative to the
    zone unless they end in a dot; default TTL 300.

    Validating resolver: dnsmasq (DnsServer, real software) inside
    resolver_addr's namespace at resolver_addr:53 with --dnssec,
    --trust-anchor=test.,<the KSK's DS>, --dnssec-check-unsigned (an
    unsigned answer inside test. is bogus) and --server=/test/auth_addr:
    it validates itself (no --proxy-dnssec), answers SERVFAIL for what is
    bogus, sets the AD bit for what validates when the query asked (DO or
    AD bit), and refuses every name outside .test. (It also gets the root's
    real trust anchor, which it insists on and never uses.) The resolver reaches nsd
    over a veth pair of its own (resolver_addr <-> auth_addr); the sender
    reaches both over its own links.

      resolver           the DnsServer: queries(), count(type, name),
                         wait_queries(...) (what the resolver was asked)
      count(type, name)  resolver.count()
      ds                 the DS record of test. (text, as ldns-key2ds says)
      keytag, digest     its key tag and SHA-256 digest (hex)
      dir, nsd_log       the files; nsd_output() its log
      dig(qtype, name, ns=None)
                         dig +dnssec through the resolver from the sender
                         (or ns): {"status", "flags", "answer" (lines)}
      glibc(qtype, name) res_query() by glibc in the sender, on the
                         sender's resolv.conf (call net.resolver() first):
                         {"rcode", "ad", "len"} from the answer's header
      stop()             both servers (also done when the environment is left)
    """

    ORIGIN = "test."
    CHILD = "insecure.test."
    # dnsmasq refuses to start with --dnssec and no trust anchor for the
    # root ("or the DNSSEC code can loop forever"): the real root's (KSK-2017,
    # as in Debian's /usr/share/dnsmasq-base/trust-anchors.conf). It is never
    # used: test.'s own anchor ends every chain, and no name outside .test
    # is forwarded anywhere.
    ROOT_ANCHOR = ".,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"

    def __init__(self, net, auth_addr, resolver_addr, records, insecure_records, bogus):
        for tool in ("nsd", "ldns-keygen", "ldns-signzone", "ldns-key2ds"):
            if not (shutil.which(tool) or os.path.exists("/usr/sbin/" + tool)):
                skip("%s is not installed (apt-get install nsd ldnsutils)" % tool)
        self.net, self.auth_addr, self.resolver_addr = net, auth_addr, resolver_addr
        self.auth_ns, self.resolver_ns = net.ns_of(auth_addr), net.ns_of(resolver_addr)
        n = net.env._next("dnssec")
        self.dir = net.env.path("dnssec-%d" % n)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.nsd_log = os.path.join(self.dir, "nsd.log")
        self.nsd = None
        self.resolver = None
        net.env.on_exit(self.stop)
        self._link(n)
        self._sign(records, bogus)
        self._write_child(insecure_records)
        self._start_nsd()
        self.resolver = DnsServer(
            net, self.resolver_ns, resolver_addr, {}, {},
            options=["--dnssec", "--dnssec-check-unsigned",
                     "--trust-anchor=%s,%d,13,2,%s" % (self.ORIGIN, self.keytag, self.digest),
                     "--trust-anchor=" + self.ROOT_ANCHOR,
                     "--server=/test/%s" % auth_addr])

    # -- set-up ---------------------------------------------------------------------
    def _link(self, n):
        """A veth pair between the resolver's and nsd's namespaces."""
        net, ra, aa = self.net, self.resolver_addr, self.auth_addr
        ifr, ifa = "auth%d" % n, "rslv%d" % n
        net._ip(self.resolver_ns, "link", "add", ifr, "type", "veth", "peer", "name", ifa,
                "netns", self.auth_ns)
        net._ip(self.resolver_ns, "addr", "add", ra + "/32", "dev", ifr)
        net._ip(self.resolver_ns, "link", "set", ifr, "up")
        net._ip(self.resolver_ns, "route", "add", aa + "/32", "dev", ifr, "src", ra)
        net._ip(self.auth_ns, "addr", "add", aa + "/32", "dev", ifa)
        net._ip(self.auth_ns, "link", "set", ifa, "up")
        net._ip(self.auth_ns, "route", "add", ra + "/32", "dev", ifa, "src", aa)

    def _run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, timeout=60,
                           stdin=subprocess.DEVNULL)
        check(r.returncode == 0, "%s failed (%d): %s%s"
              % (" ".join(argv), r.returncode, r.stdout, r.stderr))
        return r.stdout

    def _sign(self, records, bogus):
        o, aa = self.ORIGIN, self.auth_addr
        served = []                  # (owner, TYPE, line as served) of the bogus records
        variants = []
        for line in bogus:
            owner, ttl, rtype, rdata = _rr_parse(line, o)
            ttl = 300 if ttl is None else ttl
            served.append((owner, rtype, "%s\t%d\tIN\t%s\t%s" % (owner, ttl, rtype, rdata)))
            variants.append("%s %d IN %s %s" % (owner, ttl, rtype, _rdata_variant(rtype, rdata)))
        zone = ["$ORIGIN %s" % o, "$TTL 300",
                "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 300" % (o, o),
                "@ IN NS ns.%s" % o, "ns IN A %s" % aa,
                "; the insecure child: a delegation with no DS",
                "%s IN NS ns.%s" % (self.CHILD, self.CHILD), "ns.%s IN A %s" % (self.CHILD, aa),
                "; records"] + list(records) + ["; bogus (signed with other data)"] + variants
        path = os.path.join(self.dir, "test.zone")
        with open(path, "w") as f:
            f.write("\n".join(zone) + "\n")
        alg = "ECDSAP256SHA256"
        ksk = self._run(["ldns-keygen", "-a", alg, "-k", o]).strip()
        zsk = self._run(["ldns-keygen", "-a", alg, o]).strip()
        ds = self._run(["ldns-key2ds", "-n", "-2", ksk + ".key"]).strip()
        self.ds = ds
        f = ds.split()
        check(len(f) >= 8 and f[3] == "DS" and f[5] == "13" and f[6] == "2",
              "unexpected DS from ldns-key2ds: %r" % ds)
        self.keytag, self.digest = int(f[4]), "".join(f[7:]).lower()
        day = 86400
        stamp = lambda t: time.strftime("%Y%m%d%H%M%S", time.gmtime(t))  # noqa: E731
        now = time.time()
        self._run(["ldns-signzone", "-i", stamp(now - day), "-e", stamp(now + 30 * day),
                   "-f", path + ".signed", path, ksk, zsk])
        if shutil.which("ldns-verify-zone"):
            self._run(["ldns-verify-zone", "-k", ksk + ".key", path + ".signed"])
        if not served:
            return
        # Serve the bogus records' real data under the variants' signatures.
        with open(path + ".signed") as fh:
            lines = fh.read().splitlines()
        out, replaced, done = [], 0, set()
        for line in lines:
            t = line.split()
            key = (t[0].lower(), t[3].upper()) if len(t) > 4 and t[2] == "IN" else None
            if key and any(key == (ow, ty) for ow, ty, _ in served):
                replaced += 1
                if key not in done:
                    done.add(key)
                    out += [sl for ow, ty, sl in served if (ow, ty) == key]
                continue
            out.append(line)
        check(replaced == len(served), "bogus records: %d lines replaced in the signed zone, "
              "%d expected (is a bogus RRset also among the records?)" % (replaced, len(served)))
        with open(path + ".signed", "w") as fh:
            fh.write("\n".join(out) + "\n")

    def _write_child(self, records):
        c = self.CHILD
        zone = ["$ORIGIN %s" % c, "$TTL 300",
                "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 300" % (c, c),
                "@ IN NS ns.%s" % c, "ns IN A %s" % self.auth_addr] + list(records)
        with open(os.path.join(self.dir, "insecure.test.zone"), "w") as f:
            f.write("\n".join(zone) + "\n")

    def _start_nsd(self):
        d = self.dir
        conf = nsd_config(d, self.auth_addr, 53,
                          [(self.ORIGIN, os.path.join(d, "test.zone.signed")),
                           (self.CHILD, os.path.join(d, "insecure.test.zone"))])
        exe = shutil.which("nsd") or "/usr/sbin/nsd"
        r = subprocess.run([shutil.which("nsd-checkconf") or "/usr/sbin/nsd-checkconf", conf],
                           capture_output=True, text=True)
        check(r.returncode == 0, "nsd-checkconf %s: %s%s" % (conf, r.stdout, r.stderr))
        self.nsd = self.net.spawn(self.auth_ns, [exe, "-d", "-c", conf], log=self.nsd_log)
        ok = self.net.listening(self.auth_ns, 53, timeout=10, pid=self.nsd.pid)
        check(ok and self.nsd.poll() is None, "nsd did not start on %s:53: %s"
              % (self.auth_addr, self.nsd_output()))
        # Listening comes before the zones are loaded: wait for the SOA.
        ok = wait_for(lambda: self._auth_soa(), 10, step=0.1)
        check(ok, "nsd does not answer for test. and insecure.test.: %s" % self.nsd_output())

    def _auth_soa(self):
        for zone in (self.ORIGIN, self.CHILD):
            r = self.net.run(self.resolver_ns, ["dig", "+norec", "+time=1", "+tries=1",
                                                "@" + self.auth_addr, zone, "SOA"], timeout=10)
            if "status: NOERROR" not in r.stdout or " aa" not in r.stdout.split("flags:")[1][:30]:
                return False
        return True

    # -- use --------------------------------------------------------------------------
    def nsd_output(self):
        try:
            with open(self.nsd_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def count(self, qtype, name):
        return self.resolver.count(qtype, name)

    def dig(self, qtype, name, ns=None):
        """dig +dnssec qtype name @resolver from the sender (or ns)."""
        r = self.net.run(ns or self.net.sender,
                         ["dig", "+dnssec", "+time=5", "+tries=1", "@" + self.resolver_addr,
                          name, qtype], timeout=30)
        st = re.search(r"status: (\w+)", r.stdout)
        fl = re.search(r";; flags: ([a-z ]*);", r.stdout)
        ans, inside = [], False
        for line in r.stdout.splitlines():
            if line.startswith(";; ANSWER SECTION:"):
                inside = True
            elif inside and not line.strip():
                inside = False
            elif inside:
                ans.append(line)
        out = {"status": st.group(1) if st else None,
               "flags": fl.group(1).split() if fl else [], "answer": ans}
        print("dig %s %s: %s %s, %d answer records" % (qtype, name, out["status"],
                                                         " ".join(out["flags"]), len(ans)),
              flush=True)
        return out

    GLIBC_QUERY = r"""
import ctypes, json, sys
lib = ctypes.CDLL("libresolv.so.2")
q = getattr(lib, "res_query", None) or getattr(lib, "__res_query")
buf = ctypes.create_string_buffer(4096)
n = q(sys.argv[1].encode(), 1, int(sys.argv[2]), buf, 4096)
h = buf.raw[:12]
print(json.dumps({"len": n, "rcode": h[3] & 0x0f, "ad": bool(h[3] & 0x20),
                  "qr": bool(h[2] & 0x80)}))
"""
    QTYPES = {"A": 1, "MX": 15, "AAAA": 28, "TLSA": 52, "TXT": 16}

    def glibc(self, qtype, name):
        """res_query(name, IN, qtype) by glibc in the sender, with nothing
        but the sender's resolv.conf to ask for the AD bit: the answer's
        header as {"len": res_query's value, "rcode", "ad", "qr"} (qr false:
        no answer came at all)."""
        r = self.net.run(self.net.sender, ["/usr/bin/python3", "-c", self.GLIBC_QUERY, name,
                                           str(self.QTYPES[qtype])], timeout=30)
        check(r.returncode == 0, "res_query %s %s: %s%s" % (qtype, name, r.stdout, r.stderr))
        out = json.loads(r.stdout)
        print("glibc res_query %s %s: %r" % (qtype, name, out), flush=True)
        return out

    def stop(self):
        if self.resolver is not None:
            self.resolver.stop()
            self.resolver = None
        if self.nsd is not None:
            kill_group(self.nsd)
            self.nsd = None


class HttpsServer:
    """Python's http.server (ThreadingHTTPServer, real software) over ssl,
    inside a destination namespace, run by NetEnv.https() in a thread of the
    test itself (its listening socket is made inside the namespace and stays
    there). One certificate for every site; each GET is answered by its Host
    header (":port" dropped) from sites {host: (status, content_type, body)},
    with Content-Length, then the connection is closed (HTTP/1.0) without a
    TLS close_notify, as Python's ssl closes; a host not in sites gets 404.
    framing {host: how} (optional) frames a host's answer otherwise: "eof"
    leaves Content-Length out and closes the same way (the end of the body
    is then only the TCP FIN: what a path that cuts the connection short
    leaves), "close_notify" leaves it out and ends the TLS session with a
    close_notify first (a complete answer without a length). delays {host: seconds} (optional) holds the answer
    to a GET for host back that long once the request is read (each request
    in its own thread: other hosts, and other requests, are not held up);
    stop() sends held answers at once. A POST is read and answered by its
    Host from post_status {host: [status, ...]}: each takes the first status
    while more than one is left, the last one stays (200 for a host not
    named). Records every request:
      requests    [{"method", "path", "host", "sni", "version"}] in order
                  (sni: the name the client sent in its TLS ClientHello)
      gets(host)  the GET requests for host
      posts       [{"host", "path", "ctype", "body", "status"}] in order
      answered    [{"host", "status", "held"}]: the answers written out in
                  full (held: the seconds it was held back), in order
      errors      connections that ended without a request (TLS errors...),
                  or whose answer could not be written
      stop()      close the listening socket: later connections are refused
    Attributes: ns, addr, port, delays (may be changed while it runs)."""

    def __init__(self, net, ns, addr, port, cert, sites, delays=None, post_status=None,
                 framing=None):
        import http.server
        import socketserver
        self.ns, self.addr, self.port = ns, addr, port
        self.sites = dict(sites)
        self.delays = dict(delays or {})
        self.framing = dict(framing or {})
        self.post_status = {h: list(s) for h, s in (post_status or {}).items()}
        self.requests = []
        self.posts = []
        self.answered = []
        self.errors = []
        self.lock = threading.Lock()
        self.release = threading.Event()      # set by stop(): hold nothing back
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert[0], cert[1])

        def on_sni(sslsock, name, _ctx):
            sslsock.mw_sni = name
        ctx.sni_callback = on_sni
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def setup(self):
                self.request.settimeout(10)
                self.request.do_handshake()
                super().setup()

            def parse_request(self):
                # Every request is recorded, whatever its method (only GET
                # is answered; others get http.server's 501).
                if not super().parse_request():
                    return False
                self.mw_rec = {"method": self.command, "path": self.path,
                               "host": self.headers.get("Host", ""),
                               "sni": getattr(self.request, "mw_sni", None),
                               "version": self.request_version}
                with owner.lock:
                    owner.requests.append(self.mw_rec)
                print("https %s:%d: %r" % (owner.addr, owner.port, self.mw_rec), flush=True)
                return True

            def do_GET(self):
                host = self.mw_rec["host"].lower()
                if host.endswith(":%d" % owner.port):
                    host = host.rsplit(":", 1)[0]
                with owner.lock:
                    status, ctype, body = owner.sites.get(
                        host, (404, "text/plain", b"no such site\n"))
                    delay = owner.delays.get(host, 0)
                    framing = owner.framing.get(host, "length")
                if isinstance(body, str):
                    body = body.encode()
                held = 0.0
                if delay:
                    start = time.monotonic()
                    owner.release.wait(delay)
                    held = time.monotonic() - start
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if framing == "length":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if framing == "close_notify":
                    try:
                        self.request.unwrap()   # close_notify (then the peer's, or EOF)
                    except (OSError, ValueError):
                        pass
                with owner.lock:
                    owner.answered.append({"host": host, "status": status, "held": held})

            def do_POST(self):
                host = self.mw_rec["host"].lower().split(":")[0]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.lock:
                    left = owner.post_status.get(host, [200])
                    status = left.pop(0) if len(left) > 1 else left[0]
                    owner.posts.append({"host": host, "path": self.path,
                                        "ctype": self.headers.get("Content-Type"),
                                        "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, fmt, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def server_bind(self):
                # HTTPServer's own asks the resolver for the address's name.
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = addr, port

            def get_request(self):
                sock, peer = self.socket.accept()
                # The handshake happens in the request's thread (setup()).
                return ctx.wrap_socket(sock, server_side=True,
                                       do_handshake_on_connect=False), peer

            def handle_error(self, request, client_address):
                with owner.lock:
                    owner.errors.append(repr(sys.exc_info()[1]))
                print("https %s:%d: connection from %r failed: %r"
                      % (owner.addr, owner.port, client_address, sys.exc_info()[1]),
                      flush=True)

        with net.inside(ns):
            self.server = Server((addr, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        net.env.on_exit(self.stop)

    def gets(self, host):
        with self.lock:
            return [r for r in self.requests
                    if r["method"] == "GET" and r["host"].lower().split(":")[0] == host]

    def stop(self):
        if self.server is not None:
            # Held answers go out now: server_close() waits for every
            # request's thread.
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None


# -- outbound test helpers ------------------------------------------------------------
def transaction(s, mail_from, rcpts, msg):
    """One SMTP transaction on smtplib.SMTP s (after EHLO), step by step, so
    that every reply is seen: returns a dict with "mail", "rcpt" (a list,
    one per recipient) and "data" as (code, text) pairs; "data" is the reply
    to the end of the message when DATA got 354, else the reply to DATA
    (which is sent even when every RCPT was refused)."""
    out = {"mail": None, "rcpt": [], "data": None, "data_354": False}
    code, text = s.mail(mail_from)
    out["mail"] = (code, text.decode("utf-8", "replace"))
    for r in rcpts:
        code, text = s.rcpt(r)
        out["rcpt"].append((code, text.decode("utf-8", "replace")))
    import smtplib
    try:
        code, text = s.data(msg)
        out["data_354"] = True
    except smtplib.SMTPDataError as e:
        code, text = e.smtp_code, e.smtp_error
    out["data"] = (code, text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
    print("transaction %s -> %r: %r" % (mail_from, list(rcpts), out), flush=True)
    return out


def login_checker(user, password):
    """An authenticator for aiosmtpd's AUTH (Recorder(authenticator=...))
    that takes user:password and nothing else."""
    def authenticator(server, session, envelope, mechanism, data):
        from aiosmtpd.smtp import AuthResult
        return AuthResult(success=data.login == user.encode() and
                          data.password == password.encode())
    return authenticator


def aiosmtpd_version():
    """aiosmtpd's version: its greeting is "<hostname> Python SMTP <version>"."""
    return _aiosmtpd().__version__


def check_deferred(reply, result_type, what):
    """reply is "451 4.7.5 <reason>" naming the TLS-RPT result type."""
    code, text = reply
    eq(code, 451, "%s: reply code" % what)
    check(text.startswith("4.7.5"), "%s: reply %r does not start with 4.7.5" % (what, text))
    check(result_type in text, "%s: reply %r does not name %s" % (what, text, result_type))


def find_alerts(mw, **match):
    """Alerts (dicts) whose fields equal every keyword given."""
    return [a for a in mw.alerts() if all(a.get(k) == v for k, v in match.items())]


def wait_alerts(mw, n=1, timeout=5, **match):
    """Wait up to timeout for at least n alerts matching (see find_alerts);
    returns those there are."""
    end = time.monotonic() + timeout
    while True:
        got = find_alerts(mw, **match)
        if len(got) >= n or time.monotonic() > end:
            return got
        time.sleep(0.05)


# -- fixtures that are not real software ---------------------------------------
class MisbehavingBackend:
    """A raw-socket SMTP server following a script (a fixture, NOT real
    software), on 127.0.0.1:port.

    mode:
      "normal"          behaves (EHLO, MAIL, RCPT, DATA, QUIT, anything else 250)
      "refuse"          accepts and closes at once
      "silent"          accepts and never says anything
      "greet_hang"      greets, then never answers
      "slow_greeting"   greets after `delay` seconds
      "slow_first"      greets its first session (mailward's first probe)
                        after `delay` seconds, every later one at once
      "drop_after_354"  closes right after its 354 to DATA
      "drop_after_data" reads the message, closes instead of answering it
      "slow_final"      answers the end of data after `delay` seconds
      "reject_data"     answers the end of data with `final`
    Probes (EHLO + QUIT, no MAIL) are answered normally in every mode except
    refuse, silent, greet_hang, slow_greeting and slow_first.
    Attributes: port, commands (raw lines), sessions, delivered (messages
    it answered with 250), data (message bytes it read)."""

    MODES = ("normal", "refuse", "silent", "greet_hang", "slow_greeting", "slow_first",
             "drop_after_354", "drop_after_data", "slow_final", "reject_data")

    def __init__(self, mode="normal", delay=6.0, final=b"554 5.7.1 rejected by fixture",
                 env=None, port=None, caps=(b"PIPELINING", b"8BITMIME", b"SIZE 10485760")):
        if mode not in self.MODES:
            raise ValueError("unknown mode %r" % mode)
        self.mode, self.delay, self.final, self.caps = mode, delay, final, caps
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port or 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.commands = []
        self.data = []
        self.sessions = 0
        self.delivered = 0
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()
        if env is not None:
            env.on_exit(self.stop)

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.sessions += 1
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s, self.sessions == 1),
                             daemon=True).start()

    def _close(self, s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def _serve(self, s, first=False):
        mode = self.mode
        try:
            if mode == "refuse":
                self._close(s)
                return
            if mode == "silent":
                return
            if mode == "slow_greeting" or (mode == "slow_first" and first):
                time.sleep(self.delay)
            s.sendall(b"220 misbehaving.test ESMTP fixture\r\n")
            if mode == "greet_hang":
                return
            buf = b""
            while True:
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                self.commands.append(line + b"\n")
                verb = line.rstrip(b"\r").split(b" ")[0].upper()
                if verb == b"EHLO":
                    caps = [b"misbehaving.test"] + list(self.caps)
                    s.sendall(b"".join(b"250-" + c + b"\r\n" for c in caps[:-1]) +
                              b"250 " + caps[-1] + b"\r\n")
                elif verb == b"HELO":
                    s.sendall(b"250 misbehaving.test\r\n")
                elif verb == b"QUIT":
                    s.sendall(b"221 2.0.0 bye\r\n")
                    self._close(s)
                    return
                elif verb == b"DATA":
                    s.sendall(b"354 go ahead\r\n")
                    if mode == "drop_after_354":
                        self._close(s)
                        return
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        chunk = s.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    msg, buf = (b"\r\n" + buf).split(b"\r\n.\r\n", 1)
                    self.data.append(msg[2:] + b"\r\n" if msg != b"\r\n" else b"")
                    if mode == "drop_after_data":
                        self._close(s)
                        return
                    if mode == "slow_final":
                        time.sleep(self.delay)
                    if mode == "reject_data":
                        s.sendall(self.final + b"\r\n")
                    else:
                        self.delivered += 1
                        s.sendall(b"250 2.0.0 Ok: delivered by fixture\r\n")
                else:
                    s.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self.ls.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass


# -- what a certificate is, as openssl x509 reads it; mailward's event lines -----------
_CERT_INFO = {}


def cert_info(pem):
    """(sha256 fingerprint as lowercase hex, "ecdsa"|"rsa", notAfter as
    seconds since the epoch) of the first certificate in pem (text)."""
    if pem not in _CERT_INFO:
        r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-text",
                            "-enddate", "-dateopt", "iso_8601"], input=pem,
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "openssl x509: %s" % r.stderr)
        fp = re.search(r"^sha256 Fingerprint=([0-9A-F:]+)$", r.stdout, re.M | re.I)
        alg = re.search(r"Public Key Algorithm: (\S+)", r.stdout)
        na = re.search(r"^notAfter=(.+)$", r.stdout, re.M)
        check(fp and alg and na, "openssl x509 output not understood:\n%s" % r.stdout)
        kind = {"id-ecPublicKey": "ecdsa", "rsaEncryption": "rsa"}.get(alg.group(1),
                                                                       alg.group(1))
        when = datetime.datetime.strptime(na.group(1).strip(), "%Y-%m-%d %H:%M:%SZ")
        _CERT_INFO[pem] = (fp.group(1).replace(":", "").lower(), kind,
                      int(when.replace(tzinfo=datetime.timezone.utc).timestamp()))
    return _CERT_INFO[pem]


def cert_file_info(path):
    """cert_info() of the file at path."""
    with open(path) as f:
        return cert_info(f.read())


def sclient_session(env, port, opts=(), starttls=True, servername="localhost",
                   verify="localhost"):
    """openssl s_client on 127.0.0.1:port asking for servername (None:
    -noservername), verifying the chain against the test CA and the served
    certificate against verify (a host name, or an IP address); fails the
    test unless the handshake was a new, verified one. {"pem" (the served
    certificate), "version", "cipher"}."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-CAfile", os.path.join(env.certs, "ca.pem"), "-verify_return_error",
            "-verify_ip" if verify[0].isdigit() else "-verify_hostname", verify]
    argv += ["-servername", servername] if servername is not None else ["-noservername"]
    argv += (["-starttls", "smtp"] if starttls else []) + list(opts)
    r = subprocess.run(argv, input=b"QUIT\r\n", capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    new = re.search(r"^New, (TLSv1\.[23]), Cipher is (\S+)$", out, re.M)
    pem = re.search(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", out, re.S)
    if (r.returncode != 0 or not new or not pem or
            not re.search(r"^Verification: OK$", out, re.M)):
        fail("$ %s\n-> exit %d: no verified handshake:\n%s" % (" ".join(argv), r.returncode,
                                                                 out))
    return {"pem": pem.group(0), "version": new.group(1), "cipher": new.group(2)}


_EVENT_LINE = re.compile(r"mailward\[(\d+)\]: (\w+): (\S+) event=(\w+)(.*)$")
_EVENT_KV = re.compile(r'(\w+)=("[^"]*"|\S+)')


def log_events(mw, event):
    """mailward's log lines of one event, in order, as dicts of their
    key=value pairs plus "_pid", "_level", "_sid"."""
    out = []
    for line in mw.log().splitlines():
        m = _EVENT_LINE.search(line)
        if m and m.group(4) == event:
            kv = {k: v.strip('"') for k, v in _EVENT_KV.findall(m.group(5))}
            kv.update(_pid=m.group(1), _level=m.group(2), _sid=m.group(3))
            out.append(kv)
    return out


def tls_sessions(mw):
    """Every event=tls line, in order, with "listener" from its session's
    event=connect line (sessions are named by process and session id)."""
    where = {(c["_pid"], c["_sid"]): c.get("listener") for c in log_events(mw, "connect")}
    return [dict(t, listener=where.get((t["_pid"], t["_sid"]))) for t in log_events(mw, "tls")]
