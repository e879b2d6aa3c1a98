"""keygate's --forward-otlp read by OpenTelemetry's own protobuf definitions (PyPI
opentelemetry-proto): pushes LogicMonitor-style metrics and logs and OTLP spans to
keygate, then parses every export otlp_receiver.py got with the official
ExportMetricsServiceRequest, ExportLogsServiceRequest and ExportTraceServiceRequest,
and checks what each field holds.

Usage: python forward_check.py BASE_URL BEARER_TOKEN RECEIVED_DIR
"""
import glob
import json
import sys
import time
import urllib.request

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from check import check

base, bearer, received = sys.argv[1:4]
now = int(time.time())


def push(path, body, content_type="application/json"):
    req = urllib.request.Request(base + "/rest" + path, data=body, method="POST",
                                 headers={"Authorization": "Bearer " + bearer, "Content-Type": content_type})
    with urllib.request.urlopen(req) as r:
        return r.status


def dp(name, kind, values):
    return {"dataPointName": name, "dataPointType": kind, "values": values}


metrics = [{"resourceIds": {"system.hostname": "fwd-host"}, "resourceName": "fwd-host",
            "resourceProperties": {"env": "check"}, "dataSource": "Net",
            "instances": [{"instanceName": "eth0", "dataPoints": [
                dp("rx_bytes", "counter", {str(now - 60): 1000, str(now): "1500"}),
                dp("load", "gauge", {str(now): 0.75}),
                dp("delta", "derive", {str(now): -3})]}]}]
check("metrics pushed", push("/v2/metric/ingest?create=true", json.dumps(metrics).encode()) == 202)
logs = [{"msg": "forwarded line", "_lm.resourceId": {"system.hostname": "fwd-host"},
         "timestamp": now * 1000, "log_level": "warning", "component": "fwd", "attempt": 2}]
check("logs pushed", push("/log/ingest", json.dumps(logs).encode()) == 202)
trace = ExportTraceServiceRequest()
rs = trace.resource_spans.add()
rs.resource.attributes.add(key="service.name").value.string_value = "fwd-service"
span = rs.scope_spans.add().spans.add()
span.trace_id, span.span_id, span.name = bytes([7] * 16), bytes([9] * 8), "forwarded span"
span.start_time_unix_nano, span.end_time_unix_nano = now * 10**9, now * 10**9 + 5000
check("a span pushed", push("/api/v1/traces", trace.SerializeToString(), "application/x-protobuf") == 200)

# Every file the receiver wrote must parse; ours are found by their names.
parsers = {"metrics": ExportMetricsServiceRequest, "logs": ExportLogsServiceRequest,
           "traces": ExportTraceServiceRequest}
found = {}
deadline = time.time() + 30
while time.time() < deadline and len(found) < 3:
    for path in sorted(glob.glob(received + "/*.pb")):
        signal = path.rsplit("-", 1)[-1].split(".")[0]
        msg = parsers[signal]()
        with open(path, "rb") as f:
            msg.ParseFromString(f.read())
        text = json_format.MessageToJson(msg)
        if "fwd-host" in text or "fwd-service" in text:
            found[signal] = msg
    time.sleep(0.2)
check("metrics, logs and the span forwarded", set(found) == {"metrics", "logs", "traces"}, sorted(found))

# Exports queued together may arrive as one request: find ours among its resources.
def host_of(resource):
    return {kv.key: kv.value.string_value for kv in resource.attributes}.get("system.hostname")


rm = next(r for r in found["metrics"].resource_metrics if host_of(r.resource) == "fwd-host")
attrs = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
check("the resource's ids and properties are its attributes",
      attrs == {"system.hostname": "fwd-host", "env": "check"}, attrs)
by_name = {m.name: m for m in rm.scope_metrics[0].metrics}
check("one metric a datapoint, named datasource.datapoint",
      set(by_name) == {"Net.rx_bytes", "Net.load", "Net.delta"}, sorted(by_name))
rx = by_name["Net.rx_bytes"]
check("a counter is a monotonic cumulative sum",
      rx.WhichOneof("data") == "sum" and rx.sum.is_monotonic
      and rx.sum.aggregation_temporality == 2, rx)
check("its values, times and instance",
      [(p.time_unix_nano, p.as_double) for p in rx.sum.data_points]
      == [((now - 60) * 10**9, 1000.0), (now * 10**9, 1500.0)]
      and all(p.attributes[0].key == "instance" and p.attributes[0].value.string_value == "eth0"
              for p in rx.sum.data_points), rx)
check("a derive is a non-monotonic sum",
      by_name["Net.delta"].WhichOneof("data") == "sum" and not by_name["Net.delta"].sum.is_monotonic
      and by_name["Net.delta"].sum.data_points[0].as_double == -3.0)
check("a gauge is a gauge", by_name["Net.load"].WhichOneof("data") == "gauge"
      and by_name["Net.load"].gauge.data_points[0].as_double == 0.75)

rl = next(r for r in found["logs"].resource_logs if host_of(r.resource) == "fwd-host")
rec = next(rec for rec in rl.scope_logs[0].log_records if rec.body.string_value == "forwarded line")
check("a log line's body, time and severity",
      rec.body.string_value == "forwarded line" and rec.time_unix_nano == now * 10**9
      and rec.severity_text == "warning" and rec.severity_number == 13
      and rec.observed_time_unix_nano > 0, rec)
fields = {kv.key: json_format.MessageToDict(kv.value) for kv in rec.attributes}
check("its other fields are attributes",
      fields == {"component": {"stringValue": "fwd"}, "attempt": {"intValue": "2"}}, fields)
check("its resource", [(kv.key, kv.value.string_value) for kv in rl.resource.attributes]
      == [("system.hostname", "fwd-host")])

sp = next(sp for rs in found["traces"].resource_spans for ss in rs.scope_spans for sp in ss.spans
          if sp.name == "forwarded span")
check("the span goes on as it came", sp.name == "forwarded span" and sp.trace_id == bytes([7] * 16))
print("--forward-otlp read by opentelemetry-proto: every check passed")
