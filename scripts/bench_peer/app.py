"""The FastAPI + SQLite peer scripts/bench-http measures keygate's reads against.

It serves the same read as keygate's `GET /santaba/rest/setting/admins/{user}/apitokens/{id}`
the plain way: the bearer token hashed with SHA-256 and looked up in SQLite, then the
token's row read and returned as JSON. The database (PEER_DB) is made by `seed`.
"""

import hashlib
import os
import sqlite3
import sys

from fastapi import FastAPI, Header, HTTPException

DB = os.environ.get("PEER_DB", "peer.db")
app = FastAPI()
_conn = None


def conn():
    global _conn
    if _conn is None:
        _conn = sqlite3.connect(DB, check_same_thread=False)
    return _conn


@app.get("/santaba/rest/setting/admins/{user}/apitokens/{token_id}")
def token(user: int, token_id: int, authorization: str = Header(default="")):
    if not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, detail="no token")
    digest = hashlib.sha256(authorization[7:].encode()).digest()
    c = conn()
    if c.execute("SELECT user_id FROM tokens WHERE digest = ?", (digest,)).fetchone() is None:
        raise HTTPException(status_code=401, detail="unknown token")
    row = c.execute(
        "SELECT id, user_id, note, status, created_on, last_used_on FROM tokens WHERE id = ? AND user_id = ?",
        (token_id, user),
    ).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="no such token")
    return {
        "id": row[0],
        "adminId": row[1],
        "note": row[2],
        "status": row[3],
        "createdOn": row[4],
        "lastUsedOn": row[5],
        "type": "bearer",
    }


def seed(token: str, count: int) -> None:
    """Makes PEER_DB with `count` tokens of user 1; `token` is the one with id 1."""
    c = sqlite3.connect(DB)
    c.execute(
        "CREATE TABLE tokens (id INTEGER PRIMARY KEY, user_id INTEGER, digest BLOB UNIQUE, "
        "note TEXT, status INTEGER, created_on INTEGER, last_used_on INTEGER)"
    )
    rows = [(1, 1, hashlib.sha256(token.encode()).digest(), "bench", 2, 1700000000, 0)]
    rows += [
        (i, 1, hashlib.sha256(b"other %d" % i).digest(), "bench", 2, 1700000000, 0)
        for i in range(2, count + 1)
    ]
    c.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    c.commit()


if __name__ == "__main__" and sys.argv[1:2] == ["seed"]:
    seed(sys.argv[2], int(sys.argv[3]))
