"""OpenTelemetry's own OTLP/HTTP trace exporter (PyPI opentelemetry-exporter-otlp-proto-http)
against a running keygate, configured the way an application is: the endpoint and an
Authorization header, nothing else. It sends protobuf, gzipped when asked.

Usage: python otel_check.py BASE_URL BEARER_TOKEN ADMIN_TOKEN
"""
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from check import check, reader

base, bearer, admin = sys.argv[1:4]
read = reader(base, admin)
results = []


class Recording(OTLPSpanExporter):
    def export(self, spans):
        r = super().export(spans)
        results.append(r)
        return r


for compression, service in [(Compression.NoCompression, "checkout"), (Compression.Gzip, "payments")]:
    exporter = Recording(endpoint=base + "/rest/api/v1/traces",
                         headers={"Authorization": "Bearer " + bearer}, compression=compression)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("keygate-check")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.status_code", 200)
        with tracer.start_as_current_span("SELECT carts") as child:
            child.set_attribute("db.rows", 3)
            child.set_status(Status(StatusCode.ERROR, "slow"))
    provider.shutdown()
    check(service + ": both spans exported", results[-2:] == [SpanExportResult.SUCCESS] * 2, results)

spans = read("/keygate/data/spans?service=checkout")["items"]
check("checkout's two spans stored", len(spans) == 2, spans)
trace = spans[0]["traceId"]
one = read("/keygate/data/spans?traceId=" + trace)["items"]
by_name = {s["name"]: s for s in one}
check("one trace, parent and child", set(by_name) == {"GET /cart", "SELECT carts"}, by_name)
check("the child names its parent", by_name["SELECT carts"]["parentSpanId"] == by_name["GET /cart"]["spanId"])
check("kind, status and attributes kept",
      by_name["GET /cart"]["kind"] == "server" and by_name["SELECT carts"]["status"] == "error"
      and by_name["SELECT carts"]["statusMessage"] == "slow"
      and by_name["GET /cart"]["attributes"]["http.status_code"] == 200, by_name)
check("gzipped export stored", len(read("/keygate/data/spans?service=payments")["items"]) == 2)

# A wrong token: the exporter gets a refusal, not a crash, and does not retry it.
exporter = Recording(endpoint=base + "/rest/api/v1/traces",
                     headers={"Authorization": "Bearer " + bearer[:-4] + "AAAA"})
provider = TracerProvider(resource=Resource.create({"service.name": "intruder"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
with provider.get_tracer("x").start_as_current_span("nope"):
    pass
provider.shutdown()
check("a wrong token's export fails", results[-1] == SpanExportResult.FAILURE, results[-1])
check("nothing stored for it", read("/keygate/data/spans?service=intruder")["items"] == [])
print("opentelemetry-exporter-otlp-proto-http: every check passed")
