"""The harness the replica tests and the benchmarks share: free ports, an `imangor serve` process
(its environment, start, readiness, stop, log), HTTP calls to it and the password-grant login.

Used by scripts/replicas-test, bench/run, bench/instructions and bench/audit.py, each of which
puts this folder on `sys.path`. Standard library only. A check that fails raises AssertionError
(the scripts let it end the run); tests/harness/test_harness.py holds this module's own tests.
"""

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HOST = "127.0.0.1"


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def poll(fn, timeout, every=0.005):
    """Calls fn until it returns true; the time it took. Fails after `timeout` seconds."""
    start = time.monotonic()
    while True:
        if fn():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(every)


def free_port():
    """A loopback port nothing listens on now (the kernel's pick, released at once)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        socket.create_connection((HOST, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_port(port, timeout=20):
    try:
        poll(lambda: port_open(port), timeout, 0.05)
    except AssertionError:
        raise AssertionError(f"nothing listens on {port} after {timeout}s") from None


@contextlib.contextmanager
def scratch_dir(prefix):
    """A temporary folder, removed when the block ends normally and kept (with what the processes
    logged there) when it raises."""
    path = tempfile.mkdtemp(prefix=prefix)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ensure_wrk():
    """Installs wrk with apt-get when it is missing (the benchmarks' load generator)."""
    if shutil.which("wrk"):
        return
    print("wrk is missing: installing it with apt-get", file=sys.stderr, flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=False, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        subprocess.run(sudo + ["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        raise SystemExit("wrk could not be installed (apt-get install wrk)")


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, method, path, status, headers, body, elapsed):
        self.method, self.path = method, path
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def json(self):
        return json.loads(self.body) if self.body else None

    def expect(self, status):
        """This answer, if its status is `status`; fails otherwise."""
        check(self.status == status, f"{self.method} {self.path} answered {self.status} (expected {status}): {self.body[:200]}")
        return self


class Client:
    """HTTP to a server on a loopback port: a new connection per request, or one kept alive
    (`keep_alive=True`: what a benchmark measures, and what callgrind counts, is the request)."""

    def __init__(self, port, timeout=10, keep_alive=False):
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout) if keep_alive else None

    def request(self, method, path, token=None, form=None, body=None, xff=None, headers=None, timeout=None):
        """`form` is sent url-encoded, `body` as JSON; `token` as a bearer, `xff` as X-Forwarded-For."""
        headers = dict(headers or {})
        data = None
        if token:
            headers["authorization"] = f"Bearer {token}"
        if form is not None:
            data = urllib.parse.urlencode(form)
            headers["content-type"] = "application/x-www-form-urlencoded"
        if body is not None:
            data = json.dumps(body)
            headers["content-type"] = "application/json"
        if xff:
            headers["x-forwarded-for"] = xff
        start = time.monotonic()
        c = self.conn or http.client.HTTPConnection(HOST, self.port, timeout=timeout or self.timeout)
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            return Response(method, path, r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), time.monotonic() - start)
        finally:
            if c is not self.conn:
                c.close()

    def login(self, email, password, xff=None):
        """The password grant: the token answer (access_token, refresh_token, ...)."""
        r = self.request("POST", "/api/v1/token", form={"grant_type": "password", "username": email, "password": password}, xff=xff)
        check(r.status == 200, f"login of {email}: {r.status} {r.body[:200]}")
        return r.json()

    def close(self):
        if self.conn:
            self.conn.close()


def request(port, method, path, timeout=10, **kw):
    """One request on a connection of its own (see Client.request for the arguments)."""
    return Client(port, timeout).request(method, path, **kw)


def try_request(port, method, path, **kw):
    """Like `request`, but a connection error or timeout is an answer (status 0)."""
    start = time.monotonic()
    try:
        return request(port, method, path, **kw)
    except (OSError, http.client.HTTPException) as e:
        return Response(method, path, 0, {}, str(e).encode(), time.monotonic() - start)


def login(port, email, password, xff=None):
    return Client(port).login(email, password, xff=xff)


def forged(token, key=None):
    """The same header and claims, signed with another key (random unless given): well-formed,
    and wrong."""
    head, claims, _ = token.split(".")
    sig = hmac.new(key or os.urandom(32), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    return f"{head}.{claims}." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


# ---------------------------------------------------------------------------------------------
# The server process


def serve_env(port, data_dir, settings=None):
    """The environment of one `imangor serve`: PATH, listening on `port` on loopback, no metrics
    listener, its data in `data_dir`, JSON logs; then `settings` (IMANGOR_* and the like), which
    may override any of these."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "IMANGOR_LISTEN": f"{HOST}:{port}",
        "IMANGOR_METRICS_LISTEN": "off",
        "IMANGOR_DATA_DIR": data_dir,
        "IMANGOR_LOG_FORMAT": "json",
    }
    env.update(settings or {})
    return env


class Server:
    """One `imangor serve` on a free loopback port. `prefix` runs it under another command
    (`taskset -c 0`, `valgrind --tool=callgrind`); its output is appended to `log_path` (dropped
    when None). It may be started again after a stop or a kill, on the same port and data."""

    def __init__(self, binary, data_dir, settings=None, name="imangor", log_path=None, prefix=()):
        self.binary, self.name, self.log_path, self.prefix = binary, name, log_path, list(prefix)
        self.port = free_port()
        self.env = serve_env(self.port, data_dir, settings)
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=60):
        """Starts it and waits until GET /readyz answers 200; fails (the process stopped, its
        log's end in the message) when it exits first or `timeout` seconds pass."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(self.prefix + [self.binary, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log_path:
                out.close()
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if request(self.port, "GET", "/readyz", timeout=2).status == 200:
                    return self
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        code = self.proc.poll()
        self.kill()
        why = f"exited with {code}" if code is not None else f"did not answer /readyz within {timeout}s"
        raise AssertionError(f"{self.name} ({self.binary} serve on port {self.port}) {why}; its log:\n{self.log_tail()}")

    def log_tail(self, chars=4000):
        if not self.log_path:
            return "(not kept)"
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError as e:
            return f"({e})"

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; the exit code
        (0 for a clean graceful shutdown). None when it was not started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        """SIGKILL, no shutdown: what a crash leaves behind."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
