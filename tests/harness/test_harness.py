#!/usr/bin/env python3
"""Tests of the shared harness (tests/harness/harness.py), with no server binary: a stdlib HTTP server
stands in for the API, a small Python script for `imangor serve`.

Run: python3 tests/harness/test_harness.py
"""

import http.server
import json
import os
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON; /api/v1/token as the password grant."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the server under test

    def answer(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        if self.path == "/api/v1/token":
            status, doc = (200, {"access_token": "a.b.c"}) if "password=right" in body else (400, {"error": "invalid_grant"})
        else:
            status, doc = 200, {"method": self.command, "path": self.path, "body": body,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "peer_port": self.client_address[1]}
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = answer

    def log_message(self, *a):
        pass


FAKE_SERVE = textwrap.dedent('''\
    """Stands in for `imangor serve`: /readyz on IMANGOR_LISTEN, a clean exit on SIGTERM."""
    import http.server, os, signal, sys
    print("started", sys.argv[1:], os.environ["IMANGOR_DATA_DIR"], flush=True)
    if os.environ.get("FAKE_EXIT"):
        sys.exit(int(os.environ["FAKE_EXIT"]))
    if os.environ.get("FAKE_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/readyz" else 404)
            self.send_header("content-length", "0")
            self.end_headers()
        def log_message(self, *a):
            pass
    host, port = os.environ["IMANGOR_LISTEN"].rsplit(":", 1)
    http.server.HTTPServer((host, int(port)), Ready).serve_forever()
''')


def fake_binary(tmp):
    path = os.path.join(tmp, "imangor")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\n" + FAKE_SERVE)
    os.chmod(path, 0o755)
    return path


class Ports(unittest.TestCase):
    def test_a_free_port_can_be_bound(self):
        port = harness.free_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def test_wait_port_fails_on_a_closed_port_after_its_timeout(self):
        start = time.monotonic()
        with self.assertRaisesRegex(AssertionError, "nothing listens"):
            harness.wait_port(harness.free_port(), timeout=0.3)
        self.assertLess(time.monotonic() - start, 3)

    def test_wait_port_returns_once_something_listens(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            harness.wait_port(s.getsockname()[1], timeout=2)

    def test_poll_gives_the_time_it_took_and_fails_after_the_timeout(self):
        self.assertLess(harness.poll(lambda: True, 1), 0.5)
        with self.assertRaisesRegex(AssertionError, "not within"):
            harness.poll(lambda: False, 0.05)


class Environment(unittest.TestCase):
    def test_serve_env_fills_listen_data_dir_logs_and_path(self):
        env = harness.serve_env(4321, "/tmp/data")
        self.assertEqual(env["IMANGOR_LISTEN"], "127.0.0.1:4321")
        self.assertEqual(env["IMANGOR_DATA_DIR"], "/tmp/data")
        self.assertEqual(env["IMANGOR_METRICS_LISTEN"], "off")
        self.assertEqual(env["IMANGOR_LOG_FORMAT"], "json")
        self.assertEqual(env["PATH"], os.environ.get("PATH", ""))
        self.assertNotIn("HOME", env)  # nothing else of this process leaks in

    def test_settings_are_added_and_may_override_the_defaults(self):
        env = harness.serve_env(1, "/d", {"IMANGOR_RATE_LIMITS": "off", "IMANGOR_METRICS_LISTEN": "127.0.0.1:9"})
        self.assertEqual(env["IMANGOR_RATE_LIMITS"], "off")
        self.assertEqual(env["IMANGOR_METRICS_LISTEN"], "127.0.0.1:9")

    def test_a_scratch_dir_is_removed_after_success_and_kept_after_a_failure(self):
        with harness.scratch_dir("harness-test-") as ok:
            self.assertTrue(os.path.isdir(ok))
        self.assertFalse(os.path.exists(ok))
        with self.assertRaises(ValueError):
            with harness.scratch_dir("harness-test-") as failed:
                raise ValueError
        self.assertTrue(os.path.isdir(failed))
        os.rmdir(failed)


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        cls.port = cls.httpd.server_address[1]
        threading.Thread(target=cls.httpd.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()

    def test_a_json_body_a_bearer_and_a_forwarded_address_are_sent(self):
        r = harness.request(self.port, "POST", "/x", token="t0k", body={"a": 1}, xff="10.0.0.1")
        self.assertEqual(r.status, 200)
        seen = r.json()
        self.assertEqual(json.loads(seen["body"]), {"a": 1})
        self.assertEqual(seen["headers"]["content-type"], "application/json")
        self.assertEqual(seen["headers"]["authorization"], "Bearer t0k")
        self.assertEqual(seen["headers"]["x-forwarded-for"], "10.0.0.1")
        self.assertEqual(r.headers["content-type"], "application/json")  # lower-case names
        self.assertGreater(r.elapsed, 0)

    def test_a_form_is_url_encoded(self):
        seen = harness.request(self.port, "POST", "/x", form={"username": "a@b.example", "password": "two words"}).json()
        self.assertEqual(seen["body"], "username=a%40b.example&password=two+words")
        self.assertEqual(seen["headers"]["content-type"], "application/x-www-form-urlencoded")

    def test_expect_returns_the_answer_or_fails_with_method_path_and_status(self):
        r = harness.request(self.port, "GET", "/x")
        self.assertIs(r.expect(200), r)
        with self.assertRaisesRegex(AssertionError, "GET /x answered 200 [(]expected 201[)]"):
            r.expect(201)

    def test_login_is_the_password_grant_and_fails_on_anything_but_200(self):
        self.assertEqual(harness.login(self.port, "a@b.example", "right"), {"access_token": "a.b.c"})
        with self.assertRaisesRegex(AssertionError, "login of a@b.example: 400"):
            harness.login(self.port, "a@b.example", "wrong")

    def test_a_kept_alive_client_sends_every_request_on_one_connection(self):
        c = harness.Client(self.port, keep_alive=True)
        ports = {c.request("GET", f"/{i}").json()["peer_port"] for i in range(3)}
        c.close()
        self.assertEqual(len(ports), 1)
        ports = {harness.request(self.port, "GET", f"/{i}").json()["peer_port"] for i in range(3)}
        self.assertEqual(len(ports), 3)

    def test_try_request_turns_a_refused_connection_into_status_0(self):
        r = harness.try_request(harness.free_port(), "GET", "/x", timeout=1)
        self.assertEqual(r.status, 0)
        self.assertTrue(r.body)

    def test_a_forged_token_keeps_header_and_claims_and_changes_the_signature(self):
        token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        f = harness.forged(token)
        self.assertEqual(f.split(".")[:2], token.split(".")[:2])
        self.assertNotEqual(f, token)
        self.assertEqual(harness.forged(token, b"k" * 32), harness.forged(token, b"k" * 32))
        self.assertNotEqual(harness.forged(token), f)  # a random key unless given


class Process(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="harness-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.binary = fake_binary(self.tmp)
        self.log = os.path.join(self.tmp, "serve.log")

    def server(self, settings=None, **kw):
        s = harness.Server(self.binary, os.path.join(self.tmp, "data"), settings, log_path=self.log, **kw)
        self.addCleanup(s.kill)
        return s

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def test_start_waits_until_it_answers_and_stop_is_a_graceful_sigterm(self):
        s = self.server().start(10)
        self.assertEqual(harness.request(s.port, "GET", "/readyz").status, 200)
        self.assertEqual(s.stop(10), 0)
        self.assertFalse(s.running())
        self.assertIn("started ['serve']", self.read_log())

    def test_it_starts_again_on_the_same_port_and_appends_to_its_log(self):
        s = self.server().start(10)
        port = s.port
        s.kill()
        s.start(10)
        self.assertEqual(s.port, port)
        self.assertEqual(self.read_log().count("started"), 2)

    def test_a_prefix_command_runs_the_binary(self):
        s = self.server(prefix=["env", "PREFIXED=1"]).start(10)
        self.assertEqual(harness.request(s.port, "GET", "/readyz").status, 200)

    def test_a_server_that_exits_at_once_fails_the_start_with_its_log(self):
        s = self.server({"FAKE_EXIT": "3"})
        with self.assertRaisesRegex(AssertionError, "(?s)exited with 3.*started"):
            s.start(10)

    def test_a_server_that_ignores_sigterm_is_killed_after_the_timeout(self):
        s = self.server({"FAKE_IGNORE_TERM": "1"}).start(10)
        self.assertEqual(s.stop(0.5), -9)


if __name__ == "__main__":
    unittest.main()
