"""What the client checks share: a pass/fail line, and reads of keygate's API as the
administrator."""
import json
import sys
import urllib.request


def check(what, ok, detail=""):
    """Prints one line; exits at the first failure."""
    print(("ok  " if ok else "FAIL") + " " + what + (": " + str(detail) if detail and not ok else ""))
    if not ok:
        sys.exit(1)


def reader(base, admin):
    """A function reading `/santaba/rest` + path as JSON with the admin's token."""
    def read(path):
        req = urllib.request.Request(base + "/santaba/rest" + path, headers={"Authorization": "Bearer " + admin})
        with urllib.request.urlopen(req) as r:
            return json.load(r)
    return read
