"""A source database as the guide's Python stack writes it, for `imangor import python-stack`:
SQLAlchemy models with the guide's table and column names, passlib bcrypt password hashes,
Fernet-encrypted secrets under the deployment's key, and an access token signed by its
SECRET_KEY with python-jose (HS256, `sub` = the user id, `exp`).

    python make_source.py URL OUT_DIR     # URL: sqlite:///path or postgresql://...

Writes OUT_DIR/fernet.key, OUT_DIR/secret_key and prints the fixture as JSON on stdout (accounts
with their passwords, resources, secrets with their plaintext, the old stack's token).
"""
import datetime
import json
import os
import sys

from cryptography.fernet import Fernet
from jose import jwt
from passlib.context import CryptContext
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Text, create_engine
from sqlalchemy.orm import Session, declarative_base

Base = declarative_base()


class User(Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    email = Column(String, unique=True, nullable=False)
    hashed_password = Column(String, nullable=False)
    full_name = Column(String)
    role = Column(String, nullable=False, default="user")
    disabled = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, default=datetime.datetime.utcnow)


class Resource(Base):
    __tablename__ = "resources"
    id = Column(Integer, primary_key=True)
    owner_id = Column(Integer, ForeignKey("users.id"), nullable=False)
    title = Column(String, nullable=False)
    content = Column(Text, nullable=False)
    is_public = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, default=datetime.datetime.utcnow)
    updated_at = Column(DateTime, default=datetime.datetime.utcnow)


class Secret(Base):
    __tablename__ = "secrets"
    id = Column(Integer, primary_key=True)
    owner_id = Column(Integer, ForeignKey("users.id"), nullable=False)
    name = Column(String, nullable=False)
    encrypted_value = Column(String, nullable=False)
    created_at = Column(DateTime, default=datetime.datetime.utcnow)


# The guide's settings: bcrypt at cost 12 for the first account (what a deployment holds), the
# others at cost 4 so that the test stays quick (the hash format is the same).
SLOW = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=12)
QUICK = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=4)

ACCOUNTS = [
    ("alice@example.com", "alice's old passphrase 1", "Alice Admin", "admin", False),
    ("bob@example.com", "bob's old passphrase 22", "Bob Manager", "manager", False),
    ("carol@example.com", "carol's old passphrase 333", "Carol User", "user", False),
    ("dave@example.com", "dave's old passphrase 4444", "Dave Disabled", "user", True),
]


def main():
    url, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    fernet_key = Fernet.generate_key()
    secret_key = os.urandom(32).hex()
    with open(os.path.join(out, "fernet.key"), "wb") as f:
        f.write(fernet_key + b"\n")
    with open(os.path.join(out, "secret_key"), "w") as f:
        f.write(secret_key + "\n")
    fernet = Fernet(fernet_key)
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    fixture = {"users": [], "resources": [], "secrets": []}
    when = datetime.datetime(2024, 3, 1, 12, 0, 0)
    with Session(engine) as db:
        for i, (email, password, name, role, disabled) in enumerate(ACCOUNTS):
            ctx = SLOW if i == 0 else QUICK
            u = User(email=email, hashed_password=ctx.hash(password), full_name=name, role=role,
                     disabled=disabled, created_at=when + datetime.timedelta(days=i))
            db.add(u)
            db.flush()
            fixture["users"].append({"id": u.id, "email": email, "password": password, "role": role,
                                     "disabled": disabled})
            for j, public in enumerate((True, False)):
                r = Resource(owner_id=u.id, title=f"{name}'s {'public' if public else 'private'} note",
                             content=f"content {i}.{j}", is_public=public,
                             created_at=when, updated_at=when + datetime.timedelta(hours=j))
                db.add(r)
                db.flush()
                fixture["resources"].append({"id": r.id, "owner": email, "title": r.title,
                                             "content": r.content, "is_public": public})
            value = f"{email.split('@')[0]}-api-key-{i}"
            s = Secret(owner_id=u.id, name=f"api-key-{i}", encrypted_value=fernet.encrypt(value.encode()).decode())
            db.add(s)
            db.flush()
            fixture["secrets"].append({"id": s.id, "owner": email, "name": s.name, "value": value})
        db.commit()
    # An access token the old stack issued to the first account, valid for 15 minutes.
    first = fixture["users"][0]
    fixture["legacy_token"] = jwt.encode(
        {"sub": str(first["id"]), "exp": datetime.datetime.utcnow() + datetime.timedelta(minutes=15)},
        secret_key, algorithm="HS256")
    json.dump(fixture, sys.stdout)


if __name__ == "__main__":
    main()
