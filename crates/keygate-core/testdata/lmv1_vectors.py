#!/usr/bin/env python3
"""Makes lmv1_vectors.txt: LMv1 signatures computed with Python's hmac module,
independently of keygate's Rust code.

Run: python3 crates/keygate-core/testdata/lmv1_vectors.py > crates/keygate-core/testdata/lmv1_vectors.txt
Line format (tab-separated): name, verb, epoch millis, body, resource path, signature.
The resource path is what follows /santaba/rest, without the query string.
"""
import base64
import hashlib
import hmac

KEY = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f"
TS = 1700000000000
CASES = [
    ("get_no_body", "GET", TS, "", "/setting/admins/3/apitokens"),
    ("post_json", "POST", TS, '{"note":"ci pipeline","status":2}', "/setting/admins/3/apitokens"),
    ("patch_json", "PATCH", TS + 1, '{"status":1}', "/setting/admins/3/apitokens/7"),
    ("percent_encoded_path", "GET", TS, "", "/setting/admins/%33/apitokens"),
    # Sent as /setting/admins/apitokens?filter=type:lmv1&size=5; the query is not signed.
    ("query_not_signed", "GET", TS, "", "/setting/admins/apitokens"),
    ("delete_no_body", "DELETE", TS, "", "/setting/admins/3/apitokens/7"),
]

for name, verb, ts, body, path in CASES:
    mac = hmac.new(KEY.encode(), (verb + str(ts) + body + path).encode(), hashlib.sha256)
    signature = base64.b64encode(mac.hexdigest().encode()).decode()
    print("\t".join([name, verb, str(ts), body, path, signature]))
