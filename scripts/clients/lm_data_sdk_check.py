"""LogicMonitor's own data SDK (PyPI logicmonitor-data-sdk) against a running keygate.

Only the host is changed: the SDK builds https://<company>.logicmonitor.com/rest and
this points it at keygate's /rest instead. Everything else is the SDK as published:
its models, its JSON, gzip, X-version: 1, its LMv1 signature and its batching thread.

Usage: python lm_data_sdk_check.py BASE_URL BEARER_TOKEN LMV1_ID LMV1_KEY ADMIN_TOKEN
"""
import sys
import threading
import time

from logicmonitor_data_sdk.api.logs import Logs
from logicmonitor_data_sdk.api.metrics import Metrics
from logicmonitor_data_sdk.api.response_interface import ResponseInterface
from logicmonitor_data_sdk.api_client import ApiClient
from logicmonitor_data_sdk.configuration import Configuration
from logicmonitor_data_sdk.models import DataPoint, DataSource, DataSourceInstance, Resource

from check import check, reader

base, bearer, lmv1_id, lmv1_key, admin = sys.argv[1:6]


def client(**auth):
    conf = Configuration(company="keygate", **auth)
    conf._host = base + "/rest"  # the one change: keygate instead of LogicMonitor
    return ApiClient(configuration=conf)


read = reader(base, admin)


now = int(time.time())
host = Resource(ids={"system.hostname": "sdk-host"}, name="sdk-host", create=True,
                properties={"using.sdk": "true"})
cpu = DataSource(name="CPU", display_name="CPU", group="Sdk")
core = DataSourceInstance(name="CPU-0", properties={"core": "0"})
busy = DataPoint(name="cpu_busy", aggregation_type="sum")

# Metrics, one request at a time, with a bearer token.
metrics = Metrics(batch=False, api_client=client(bearer_token=bearer))
resp, status, _ = metrics.send_metrics(resource=host, datasource=cpu, instance=core, datapoint=busy,
                                       values={str(now - 60): "23", str(now): 24.5})
check("bearer: send_metrics answered 202", status == 202, (status, resp))
check("bearer: the response model reads code and timestamp",
      resp.code == 202 and isinstance(resp.timestamp, int), resp)

# Resource and instance properties (PATCH by default, PUT with patch=False).
_, status, _ = metrics.update_resource_property(resource_ids={"system.hostname": "sdk-host"},
                                                resource_properties={"env": "lab"})
check("update_resource_property (PATCH) answered 202", status == 202, status)

# Metrics signed with LMv1: the SDK signs the JSON, then gzips it.
signed = Metrics(batch=False, api_client=client(id=lmv1_id, key=lmv1_key))
_, status, _ = signed.send_metrics(resource=host, datasource=cpu, instance=core,
                                   datapoint=DataPoint(name="cpu_idle"), values={str(now): "75"})
check("LMv1: send_metrics answered 202", status == 202, status)

# Instance properties replaced (PUT): after the pushes above, which each send the
# instance's properties again and so merge them in.
_, status, _ = metrics.update_instance_property(resource_ids={"system.hostname": "sdk-host"},
                                                datasource="CPU", instance_name="CPU-0",
                                                instance_properties={"speed": "fast"}, patch=False)
check("update_instance_property (PUT) answered 202", status == 202, status)

# Logs, one request at a time.
logs = Logs(batch=False, api_client=client(bearer_token=bearer))
resp, status, _ = logs.send_logs(resource=Resource(ids={"system.hostname": "sdk-host"}),
                                 msg="sdk says hello", timestamp=now, metadata={"source": "sdk"},
                                 log_level="info")
check("send_logs answered 202", status == 202, (status, resp))


# The batching clients: their background thread flushes every interval (and posts an
# empty batch when nothing is queued); the callback hears each answer.
class Heard(ResponseInterface):
    def __init__(self):
        self.ok, self.errors, self.event = [], [], threading.Event()

    def success_callback(self, request, response, status, request_id=None):
        self.ok.append(status)
        self.event.set()

    def error_callback(self, request, response, status, request_id=None, reason=None):
        self.errors.append((status, response))
        self.event.set()


heard = Heard()
batched = Metrics(batch=True, interval=1, response_callback=heard, api_client=client(bearer_token=bearer))
for i in range(5):
    batched.send_metrics(resource=host, datasource=cpu, instance=DataSourceInstance(name="CPU-1"),
                         datapoint=busy, values={str(now + i): str(i)})
heard_logs = Heard()
batched_logs = Logs(batch=True, interval=1, response_callback=heard_logs, api_client=client(bearer_token=bearer))
batched_logs.send_logs(resource=Resource(ids={"system.hostname": "sdk-host"}), msg="batched line", log_level="warn")
check("batched metrics: a success callback within 10 s", heard.event.wait(10) and heard.ok, heard.errors)
check("batched logs: a success callback within 10 s", heard_logs.event.wait(10) and heard_logs.ok,
      heard_logs.errors)
time.sleep(2.5)  # a few more intervals, with nothing queued: the empty batches
check("batched metrics: no error callbacks", not heard.errors, heard.errors)

# What keygate stored, read back.
items = read("/keygate/data/resources")["items"]
check("one resource stored", len(items) == 1, items)
r = read("/keygate/data/resources/%d" % items[0]["id"])
check("resource properties merged", r["properties"] == {"using.sdk": "true", "env": "lab"}, r["properties"])
inst = {i["instanceName"]: i for i in r["instances"]}
check("instance properties replaced", inst["CPU-0"]["properties"] == {"speed": "fast"}, inst["CPU-0"])
points = {d["dataPointName"]: d["id"] for d in inst["CPU-0"]["dataPoints"]}
values = read("/keygate/data/datapoints/%d/values" % points["cpu_busy"])["values"]
check("bearer values stored", values == [[(now - 60) * 1000, 23.0], [now * 1000, 24.5]], values)
values = read("/keygate/data/datapoints/%d/values" % points["cpu_idle"])["values"]
check("LMv1 values stored", values == [[now * 1000, 75.0]], values)
batched_points = {d["dataPointName"]: d["id"] for d in inst["CPU-1"]["dataPoints"]}
values = read("/keygate/data/datapoints/%d/values" % batched_points["cpu_busy"])["values"]
check("batched values stored", len(values) == 5, values)
lines = [l["message"] for l in read("/keygate/data/logs")["items"]]
check("log lines stored", sorted(lines) == ["batched line", "sdk says hello"], lines)
print("logicmonitor-data-sdk: every check passed")
