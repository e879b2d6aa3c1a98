"""schemathesis hooks for keygate (loaded by scripts/schemathesis via SCHEMATHESIS_HOOKS).

The run authenticates as the administrator with a bearer token. Generated requests
may disable or delete that token, or switch the portal's Traces feature off (which
refuses every bearer token): before each case the token is checked, and when it no
longer works a new one is minted with the admin CLI, which works on the database
directly.
"""

import os
import subprocess
import time
import urllib.error
import urllib.request

import schemathesis

KEYGATE = os.environ["KG_BIN"]
BASE = os.environ["KG_BASE"]
ENV = dict(os.environ, KEYGATE_DATABASE_URL=os.environ["KG_DB"])


def _cli(*args: str) -> str:
    out = subprocess.run([KEYGATE, *args], env=ENV, check=True, capture_output=True, text=True)
    return out.stdout


def _works(token: str) -> bool:
    req = urllib.request.Request(f"{BASE}/setting/portal", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def _admin_username() -> str:
    # The administrator may have been renamed; user 1 is the one created on first start.
    for line in _cli("user", "list").splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == "1":
            return parts[1]
    raise RuntimeError("user 1 is gone")


@schemathesis.auth(refresh_interval=None)
class AdminBearer:
    token = os.environ["KG_ADMIN_TOKEN"]
    minted = 0

    def get(self, case, ctx):
        if not _works(AdminBearer.token):
            _cli("portal", "set", "--traces-enabled", "true", "--max-tokens-per-user", "1000")
            AdminBearer.token = _cli("token", "create", "--user", _admin_username()).strip()
            AdminBearer.minted += 1
            # The server learns of changes made by the CLI within its poll interval.
            for _ in range(100):
                if _works(AdminBearer.token):
                    break
                time.sleep(0.05)
        return AdminBearer.token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
