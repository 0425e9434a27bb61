#!/usr/bin/env python3
"""Writes tests/fixtures/fernet.json: a Fernet key, a token made by Python's `cryptography`
library (the one the security guide encrypts with), and its plaintext. imangor must decrypt it,
so data brought over from a deployment of the guide's Python stack stays readable.

    python3 -m venv /tmp/fv && /tmp/fv/bin/pip install 'cryptography==50.*' \
      && /tmp/fv/bin/python scripts/make-fernet-fixture.py
"""
import json, os, sys
from cryptography.fernet import Fernet

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fernet.json")
key = Fernet.generate_key()
plaintext = "a secret from the Python stack, with UTF-8 (é, ✓) and 'quotes'"
token = Fernet(key).encrypt(plaintext.encode("utf-8"))
assert Fernet(key).decrypt(token).decode("utf-8") == plaintext
import cryptography
fixture = {
    "made_by": f"cryptography {cryptography.__version__}, Python {sys.version.split()[0]}",
    "key": key.decode("ascii"),
    "token": token.decode("ascii"),
    "plaintext": plaintext,
}
with open(out, "w") as f:
    json.dump(fixture, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(f"wrote {os.path.normpath(out)} ({fixture['made_by']})")
