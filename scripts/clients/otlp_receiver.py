"""A plain OTLP/HTTP receiver for keygate's --forward-otlp: each export it is sent is
written, gunzipped, to OUT_DIR as NNNN-<signal>.bin and answered 200 with an empty
response, as a Collector's otlphttp receiver answers. It parses nothing itself:
forward_check.py reads the files with OpenTelemetry's own protobuf classes.

Usage: python otlp_receiver.py PORT OUT_DIR
"""
import gzip
import http.server
import itertools
import os
import sys

port, out = int(sys.argv[1]), sys.argv[2]
counter = itertools.count()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        signal = self.path.rsplit("/", 1)[-1]
        kind = "json" if self.headers.get("Content-Type", "").startswith("application/json") else "pb"
        name = os.path.join(out, "%04d-%s.%s" % (next(counter), signal, kind))
        with open(name + ".part", "wb") as f:
            f.write(body)
        os.rename(name + ".part", name)
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Content-Type", "application/x-protobuf"))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
