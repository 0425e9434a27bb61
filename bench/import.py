#!/usr/bin/env python3
"""How fast `imangor import python-stack` moves a deployment of the guide's stack (issue 20).

Builds a source database with the guide's schema straight through sqlite3 (the rows the guide's
SQLAlchemy models write: users with one bcrypt hash of cost 12, copied to every account, since the
import copies hashes and never checks them; resources spread over the users, 10% public), then
imports it with the release binary into a fresh imangor on SQLite (and on PostgreSQL when one
answers, `--pg`), pinned to core 0, and prints rows per second per run. The import is I/O bound:
nothing is hashed, nothing is decrypted (the benchmark has no secrets).

    python3 bench/import.py [--users 100000] [--resources 1000000] [--pg]

Environment: IMANGOR_BENCH_BIN (default target/bench/release/imangor), IMANGOR_BENCH_PG
(default postgres://postgres@127.0.0.1:5432/test).
"""
import argparse
import datetime
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import uuid

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from harness import Server, check, scratch_dir  # noqa: E402

BIN = os.environ.get("IMANGOR_BENCH_BIN", os.path.join(ROOT, "target", "bench", "release", "imangor"))
PG = os.environ.get("IMANGOR_BENCH_PG", "postgres://postgres@127.0.0.1:5432/test")
# passlib's bcrypt at the guide's cost 12, of "bench old passphrase 1".
HASH = "$2b$12$rwrZzrmuV8EmfOieUp/uyOT50hUbRzwwOOGzNLRDm9pPR.hshqSuC"
# A Fernet key the import is given (no secret row uses it).
FERNET_KEY = "q0Jm6o8I3lqZvT1dQ1GmW3P6tC2b0JmY9tWkB2i8b8U="


def make_source(path, users, resources):
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR NOT NULL UNIQUE,
            hashed_password VARCHAR NOT NULL, full_name VARCHAR, role VARCHAR NOT NULL,
            disabled BOOLEAN NOT NULL, created_at DATETIME);
        CREATE TABLE resources (id INTEGER NOT NULL PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id),
            title VARCHAR NOT NULL, content TEXT NOT NULL, is_public BOOLEAN NOT NULL,
            created_at DATETIME, updated_at DATETIME);
        CREATE TABLE secrets (id INTEGER NOT NULL PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id),
            name VARCHAR NOT NULL, encrypted_value VARCHAR NOT NULL, created_at DATETIME);
    """)
    when = datetime.datetime(2024, 1, 1)
    stamp = lambda i: (when + datetime.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    rng = random.Random(20)
    db.executemany("INSERT INTO users VALUES (?,?,?,?,?,?,?)", (
        (i, f"user{i}@example.com", HASH, f"User {i}", "admin" if i == 1 else "user", False, stamp(i))
        for i in range(1, users + 1)))
    db.executemany("INSERT INTO resources VALUES (?,?,?,?,?,?,?)", (
        (i, rng.randint(1, users), f"note {i}", f"content of note {i}", rng.random() < 0.1, stamp(i), stamp(i))
        for i in range(1, resources + 1)))
    db.commit()
    db.close()


def pg_database():
    name = f"imangor_import_bench_{uuid.uuid4().hex[:10]}"
    base = PG.split("?")[0].rsplit("/", 1)[0]
    subprocess.run(["psql", "-q", f"{base}/postgres", "-c", f"create database {name}"], check=True, capture_output=True)
    return f"{base}/{name}", lambda: subprocess.run(
        ["psql", "-q", f"{base}/postgres", "-c", f"drop database if exists {name} with (force)"], capture_output=True)


def run(target, work, source, users, resources):
    data = os.path.join(work, f"data-{target}")
    settings = {"IMANGOR_RATE_LIMITS": "off", "IMANGOR_BOOTSTRAP_ADMIN_EMAIL": "bench-admin@example.com",
                "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD": "bench admin passphrase 1", "RUST_LOG": "warn"}
    drop = lambda: None  # noqa: E731
    if target == "postgres":
        url, drop = pg_database()
        settings["IMANGOR_DATABASE_URL"] = url
    server = Server(BIN, data, settings, log_path=os.path.join(work, f"server-{target}.log"))
    try:
        server.start()  # migrates, creates the bootstrap admin: the target as an operator has it
        server.stop()
        key = os.path.join(work, "fernet.key")
        with open(key, "w") as f:
            f.write(FERNET_KEY + "\n")
        report = os.path.join(work, f"report-{target}.json")
        t = time.monotonic()
        done = subprocess.run(["taskset", "-c", "0", BIN, "import", "python-stack", "--source", f"sqlite://{source}",
                               "--fernet-key-file", key, "--report", report], env=server.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - t
        check(done.returncode == 0, f"import on {target} exits 0: {done.stderr[-2000:]}")
        rows = users + resources
        print(f"{target:9} {users:>8} users {resources:>9} resources  {elapsed:7.1f} s  {rows / elapsed:>9,.0f} rows/s")
        return {"target": target, "users": users, "resources": resources, "seconds": round(elapsed, 2),
                "rows_per_second": round(rows / elapsed), "report": json.load(open(report))}
    finally:
        server.stop()
        drop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--resources", type=int, default=1_000_000)
    p.add_argument("--pg", action="store_true")
    a = p.parse_args()
    check(os.path.exists(BIN), f"{BIN} is missing: cargo build --release (CARGO_TARGET_DIR=target/bench)")
    with scratch_dir("imangor-import-bench-") as work:
        source = os.path.join(work, "guide.db")
        t = time.monotonic()
        make_source(source, a.users, a.resources)
        print(f"source: {a.users} users, {a.resources} resources (sqlite3, {time.monotonic() - t:.1f} s)")
        results = [run("sqlite", work, source, a.users, a.resources)]
        if a.pg:
            results.append(run("postgres", work, source, a.users, a.resources))
        print(json.dumps(results, indent=1)[:4000])


if __name__ == "__main__":
    main()
