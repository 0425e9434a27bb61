#!/usr/bin/env python3
"""How a get and a list page scale with the size of the resources table (SQLite).

Starts a release `imangor serve` on a temporary data dir, seeds N resources straight into its
SQLite file (10% public, owners spread over 1000 accounts, 1000 owned by the measuring user),
and times sequential keep-alive requests: GET /api/v1/resources/{id} of an own private
resource, and list pages (limit=20) as a plain user (own + public scope) and as an admin (all).
Prints one table for each N given (default: 1000 and 1000000) so the ratio comes from one run.

    cargo build --release && python3 bench/scale.py [--rows 1000 1000000] [--requests 2000]
"""
import argparse, http.client, json, os, random, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.parse, uuid

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "imangor")
PASSWORD = "benchmark passphrase 1"


def uuid7(ms):
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(b)))


def start(data_dir, port):
    env = {"PATH": os.environ["PATH"], "IMANGOR_DATA_DIR": data_dir, "IMANGOR_LISTEN": f"127.0.0.1:{port}",
           "IMANGOR_BOOTSTRAP_ADMIN_EMAIL": "admin@example.com", "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
           "IMANGOR_LOG_FORMAT": "json", "RUST_LOG": "warn"}
    p = subprocess.Popen(["taskset", "-c", "0", BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def call(c, method, path, body=None, token=None, form=False):
    headers = {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        headers["content-type"] = "application/x-www-form-urlencoded" if form else "application/json"
        body = urllib.parse.urlencode(body) if form else json.dumps(body)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def login(c, email):
    s, v = call(c, "POST", "/api/v1/token", {"grant_type": "password", "username": email, "password": PASSWORD}, form=True)
    assert s == 200, (s, v)
    return v["access_token"]


def seed(db_path, n, alice_id):
    db = sqlite3.connect(db_path)
    now = int(time.time() * 1_000_000)
    owners = [uuid7(now // 1000 - 10_000_000) for _ in range(1000)]
    db.executemany("insert into users (id, email, full_name, password_hash, role, disabled, created_at, updated_at) values (?, ?, 'Seed', 'x', 'user', 0, ?, ?)",
                   [(o, f"seed{i}@example.com", now, now) for i, o in enumerate(owners)])
    start_ms = now // 1000 - n
    rows, mine = [], []
    for i in range(n):
        own = i % max(1, n // 1000) == 0
        rid = uuid7(start_ms + i)
        rows.append((rid, alice_id if own else random.choice(owners), f"title {i}", "content " * 8, 0 if own else int(random.random() < 0.1), now, now))
        if own:
            mine.append(rid)
        if len(rows) == 50_000:
            db.executemany("insert into resources values (?, ?, ?, ?, ?, ?, ?)", rows)
            rows = []
    db.executemany("insert into resources values (?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.execute("analyze")
    db.close()
    return mine


def timed(c, n, method, path, token):
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        s, _ = call(c, method, path, token=token)
        lat.append(time.perf_counter() - t)
        assert s == 200, (s, path)
    total = time.perf_counter() - t0
    lat.sort()
    return n / total, statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000


def run(rows, requests, port):
    with tempfile.TemporaryDirectory() as d:
        p = start(d, port)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port)
            s, alice = call(c, "POST", "/api/v1/users", {"email": "alice@example.com", "password": PASSWORD, "full_name": "Alice"})
            assert s == 201, (s, alice)
            mine = seed(os.path.join(d, "imangor.db"), rows, alice["id"])
            ut, at = login(c, "alice@example.com"), login(c, "admin@example.com")
            out = []
            for name, path, tok in [("get own private", f"/api/v1/resources/{mine[len(mine) // 2]}", ut),
                                    ("list page, user scope", "/api/v1/resources?limit=20", ut),
                                    ("list page, admin scope", "/api/v1/resources?limit=20", at)]:
                timed(c, requests // 10, "GET", path, tok)  # warm-up
                out.append((name,) + timed(c, requests, "GET", path, tok))
            return out
        finally:
            p.terminate()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1000, 1_000_000])
    ap.add_argument("--requests", type=int, default=2000)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit("build first: cargo build --release")
    print(f"{'rows':>9} | {'request':<24} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7}")
    for i, n in enumerate(a.rows):
        for name, rps, p50, p99 in run(n, a.requests, 18700 + i):
            print(f"{n:>9} | {name:<24} | {rps:>8.0f} | {p50:>7.3f} | {p99:>7.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
