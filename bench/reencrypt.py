#!/usr/bin/env python3
"""Re-encryption throughput (issue 4): N secrets rewritten under a new data key by
`imangor keys reencrypt`, on SQLite, with the release binary.

Seeds N rows straight into a fresh SQLite database as Fernet tokens (what an import from the
guide's Python stack leaves; needs Python's `cryptography`), then times two passes:
  1. Fernet -> AES-256-GCM (the import's first re-encryption), under the configured key;
  2. AES-256-GCM -> AES-256-GCM after `imangor keys add` (a routine rotation).
Each pass is checked: every row ends under the newest key.

    python3 bench/reencrypt.py [--rows 100000] [--batch 500]
Environment: IMANGOR_BENCH_BIN (default target/bench/release/imangor).
"""
import argparse, base64, os, sqlite3, subprocess, tempfile, time, uuid

try:
    from cryptography.fernet import Fernet
except ImportError:
    raise SystemExit("needs Python's cryptography: pip install cryptography")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.environ.get("IMANGOR_BENCH_BIN", os.path.join(ROOT, "target", "bench", "release", "imangor"))


def uuid7(ms):
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(b)))


def run(env, *args):
    t = time.monotonic()
    p = subprocess.run(["taskset", "-c", "0", BIN, *args], env=env, capture_output=True, text=True)
    took = time.monotonic() - t
    if p.returncode != 0:
        raise SystemExit(f"imangor {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return took, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="imangor-reencrypt-")
    fkey = Fernet.generate_key()
    main_key = base64.b64encode(os.urandom(32)).decode()
    keyfile = os.path.join(d, "data-keys")
    with open(keyfile, "w") as f:
        f.write(f"k1:{main_key}\nlegacy:{fkey.decode()}\n")
    os.chmod(keyfile, 0o600)
    db = os.path.join(d, "imangor.db")
    env = {"PATH": os.environ["PATH"], "IMANGOR_DATA_DIR": os.path.join(d, "data"),
           "IMANGOR_DATABASE_URL": f"sqlite://{db}", "IMANGOR_DATA_KEYS_FILE": keyfile,
           "IMANGOR_LOG_FORMAT": "json", "RUST_LOG": "warn"}
    run(env, "migrate")
    f = Fernet(fkey)
    c = sqlite3.connect(db)
    owner = str(uuid.uuid4())
    c.execute("insert into users (id, email, full_name, password_hash, role, disabled, created_at, updated_at) "
              "values (?, 'bench@example.com', 'Bench', 'x', 'user', 0, 0, 0)", (owner,))
    now = int(time.time() * 1000) - a.rows
    t = time.monotonic()
    rows = [(uuid7(now + i), owner, f"secret-{i}", "legacy", f.encrypt(os.urandom(24).hex().encode()), i)
            for i in range(a.rows)]
    c.executemany("insert into secrets (id, owner_id, name, key_id, ciphertext, created_at) values (?, ?, ?, ?, ?, ?)", rows)
    c.commit()
    print(f"seeded {a.rows} Fernet rows in {time.monotonic() - t:.1f} s")

    def check(key):
        n = c.execute("select count(*) from secrets where key_id <> ?", (key,)).fetchone()[0]
        assert n == 0, f"{n} rows not under {key}"

    took, out, _ = run(env, "keys", "reencrypt", "--batch", str(a.batch))
    check("k1")
    print(f"pass 1, Fernet -> AES-256-GCM: {a.rows} rows in {took:.1f} s = {a.rows / took:,.0f} rows/s")
    _, _, err = run(env, "keys", "add")
    new = err.split()[2]
    took, out, _ = run(env, "keys", "reencrypt", "--batch", str(a.batch))
    check(new)
    print(f"pass 2, AES-256-GCM -> AES-256-GCM: {a.rows} rows in {took:.1f} s = {a.rows / took:,.0f} rows/s")
    print(f"(batch {a.batch}, server core 0, {db})")


if __name__ == "__main__":
    main()
