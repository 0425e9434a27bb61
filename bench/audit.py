#!/usr/bin/env python3
"""The cost of auditing a request, and the event rate the audit path sustains (issue 6).

One release server on SQLite (core 0), wrk on core 1, two cases of the same shape in one run:
  without  GET /api/v1/resources/{id} of an id that does not exist: 404, no event
  with     GET /api/v1/resources/{id} of another user's private resource: 404 and an
           `authz.denied` event (queued, written in batches, sealed into the hash chain)
The difference is the cost of auditing a request. Events written per second during "with" is the
rate the audit path sustained; after the run the script waits for the sealer and reports how
many rows are still unsealed and whether `imangor audit verify` passes.

    python3 bench/audit.py [--duration 10] [--connections 32]

--page (issue 16, item 4): the time of `GET /api/v1/audit?limit=50` (an admin's page with its
chain check) with 10^3 and with 10^6 sealed events, which must stay within 1.5x. The events are
inserted unsealed, straight into SQLite (an action no detector counts), in transactions of 50 000,
and the server's own sealer seals and signs them, so the chain is the one a server makes. Each size
is measured twice, sequentially over one connection after the server's periodic walk has caught up:
with the head just signed, and with the longest unsigned tail the schedule allows (999 rows after
the newest checkpoint, which the page hashes). IMANGOR_AUDIT_CHECKPOINT_INTERVAL is an hour during
the run so that only the count rule (1000 rows) signs and the tails are the ones measured.

    python3 bench/audit.py --page [--requests 200] [--sizes 1000,1000000]
Environment: IMANGOR_BENCH_BIN (default target/bench/release/imangor).
"""
import argparse, os, re, sqlite3, subprocess, sys, time, uuid

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from harness import Client, Server, ensure_wrk, login, request, scratch_dir  # noqa: E402

BIN = os.environ.get("IMANGOR_BENCH_BIN", os.path.join(ROOT, "target", "bench", "release", "imangor"))
PASSWORD = "benchmark passphrase 1"


def server(d, settings):
    """The measured server on core 0 (wrk runs on core 1), on SQLite in d."""
    db = os.path.join(d, "imangor.db")
    settings = {"IMANGOR_DATABASE_URL": f"sqlite://{db}", "IMANGOR_RATE_LIMITS": "off", "RUST_LOG": "warn", **settings}
    return Server(BIN, os.path.join(d, "data"), settings, log_path=os.path.join(d, "server.log"), prefix=["taskset", "-c", "0"]), db


def wrk(port, path, token, duration, conns):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
                          "-H", f"authorization: Bearer {token}", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


ADMIN, ADMIN_PASSWORD = "bench-admin@example.com", "bench admin passphrase 1"


def insert_events(db, n):
    """n unsealed rows, oldest first after every row already there, in transactions of 50 000."""
    con = sqlite3.connect(db, timeout=60)
    at = int(time.time() * 1e6)
    done = 0
    while done < n:
        k = min(50_000, n - done)
        rows = [(str(uuid.uuid4()), at + done + i, "bench.page", "success", "info", None, "bench", "127.0.0.1", None, None)
                for i in range(k)]
        with con:
            con.executemany("insert into security_events (id, at, action, outcome, severity, actor_id, target, ip, request_id, detail)"
                            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        done += k
    con.close()


def page_times(port, token, n):
    c = Client(port, timeout=60, keep_alive=True)
    times, chain = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.request("GET", "/api/v1/audit?limit=50", token=token)
        times.append((time.perf_counter() - t0) * 1000)
        chain = r.expect(200).json()["chain"]
    c.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.9)], chain


def page_bench(a):
    with scratch_dir("imangor-audit-page-") as d:
        srv, db = server(d, {"IMANGOR_BOOTSTRAP_ADMIN_EMAIL": ADMIN, "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
                             "IMANGOR_AUDIT_CHECKPOINT_INTERVAL": "3600"})
        port = srv.start().port
        results = []
        try:
            token = login(port, ADMIN, ADMIN_PASSWORD)["access_token"]

            def settle(want_unsigned, through_at_least):
                """Waits until every row is sealed, `unsigned` rows follow the newest checkpoint and the
                server's periodic walk (every minute) holds through `through_at_least`."""
                deadline = time.monotonic() + 600
                while True:
                    _, _, chain = page_times(port, token, 1)
                    if (chain["unsealed"] == 0 and chain["unsigned"] == want_unsigned
                            and chain["verified_through"] >= through_at_least):
                        return chain
                    assert chain["verified"], chain
                    assert time.monotonic() < deadline, chain
                    time.sleep(0.5)

            for size in [int(x) for x in a.sizes.split(",")]:
                _, _, chain = page_times(port, token, 1)
                head = chain["since_seq"] + chain["unsigned"]
                # Up to `size` rows, then to a signed head: the newest checkpoint's 1000-row rule.
                grow = max(size - head, 0)
                t0 = time.monotonic()
                insert_events(db, grow)
                inserted = time.monotonic() - t0
                while True:
                    _, _, chain = page_times(port, token, 1)
                    if chain["unsealed"] == 0:
                        break
                    time.sleep(0.5)
                sealed = time.monotonic() - t0
                if chain["unsigned"]:
                    insert_events(db, 1000 - chain["unsigned"])
                chain = settle(0, 1)
                head = chain["since_seq"]
                chain = settle(0, head)
                waited = time.monotonic() - t0
                signed = page_times(port, token, a.requests)
                insert_events(db, 999)
                chain = settle(999, head)
                tail = page_times(port, token, a.requests)
                results.append((size, head, signed, tail))
                print(f"{head:>9} events: signed head {signed[0]:7.2f} ms median, {signed[1]:7.2f} ms p90 "
                      f"(rows hashed {signed[2]['rows']}); 999 unsigned {tail[0]:7.2f} ms median, {tail[1]:7.2f} ms p90 "
                      f"(rows hashed {tail[2]['rows']}); verified={tail[2]['verified']}, through {tail[2]['verified_through']}"
                      f" [{grow} rows inserted in {inserted:.1f} s, sealed after {sealed:.1f} s, walked after {waited:.1f} s]",
                      flush=True)
        finally:
            srv.stop(60)
        verify = subprocess.run([BIN, "audit", "verify"], env=srv.env, capture_output=True, text=True)
    print("audit verify:", " / ".join(verify.stdout.strip().splitlines()) if verify.stdout else verify.stderr.strip())
    if len(results) >= 2:
        small, large = results[0], results[-1]
        for i, name in [(2, "signed head"), (3, "999 unsigned")]:
            ratio = large[i][0] / small[i][0]
            print(f"{name}: {large[1]} vs {small[1]} events: {ratio:.2f}x the median page time "
                  f"({'within' if ratio <= 1.5 else 'OVER'} 1.5x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--page", action="store_true", help="the audit page's time at 10^3 and 10^6 events (issue 16)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--sizes", default="1000,1000000")
    a = ap.parse_args()
    if a.page:
        return page_bench(a)
    ensure_wrk()
    with scratch_dir("imangor-audit-bench-") as d:
        srv, db = server(d, {})
        port = srv.start().port
        try:
            tokens = []
            for name in ["owner", "prober"]:
                email = f"{name}@example.com"
                request(port, "POST", "/api/v1/users", body={"email": email, "password": PASSWORD, "full_name": name})
                tokens.append(login(port, email, PASSWORD)["access_token"])
            r = request(port, "POST", "/api/v1/resources", body={"title": "private", "content": "x", "is_public": False},
                        token=tokens[0]).expect(201).json()
            other = f"/api/v1/resources/{r['id']}"
            missing = f"/api/v1/resources/{uuid.uuid4()}"
            request(port, "GET", other, token=tokens[1]).expect(404)
            request(port, "GET", missing, token=tokens[1]).expect(404)
            time.sleep(1)
            count = lambda: sqlite3.connect(db).execute("select count(*) from security_events where action = 'authz.denied'").fetchone()[0]
            without = wrk(port, missing, tokens[1], a.duration, a.connections)
            before = count()
            t0 = time.monotonic()
            with_ = wrk(port, other, tokens[1], a.duration, a.connections)
            written_during = count() - before
            elapsed = time.monotonic() - t0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                unsealed = sqlite3.connect(db).execute("select count(*) from security_events where seq is null").fetchone()[0]
                if unsealed == 0:
                    break
                time.sleep(0.5)
            settle = time.monotonic() - t0 - elapsed
        finally:
            srv.stop(30)
        verify = subprocess.run([BIN, "audit", "verify"], env=srv.env, capture_output=True, text=True)
        total = sqlite3.connect(db).execute("select count(*) from security_events where action = 'authz.denied'").fetchone()[0] - before
    print(f"without an event: {without[0]:8.0f} req/s  p99 {without[1]:6.2f} ms")
    print(f"with an event:    {with_[0]:8.0f} req/s  p99 {with_[1]:6.2f} ms")
    cost_us = (1 / with_[0] - 1 / without[0]) * 1e6
    print(f"cost of auditing a request: {cost_us:.1f} µs of the server's core ({100 * (1 - with_[0] / without[0]):.1f}% of throughput)")
    print(f"events written during the run: {written_during} in {elapsed:.1f} s = {written_during / elapsed:,.0f} events/s; "
          f"{total} in all after the queue drained; all sealed {settle:.1f} s after the run (unsealed now: {unsealed})")
    print("audit verify:", verify.stdout.strip().splitlines()[-1] if verify.stdout else verify.stderr.strip())


if __name__ == "__main__":
    main()
