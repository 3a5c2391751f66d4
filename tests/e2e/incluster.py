"""Python programs the kind tests run inside the cluster, in restricted pods of the service image.

Standard library only (the image has python and nothing else we could rely on). Each prints
JSON lines the test parses; DNS_CHECK and REPUBLISHER find the service in the environment
variable BASE_URL, normally http://connection-flask.connections:5000 (in-cluster DNS).
"""

from __future__ import annotations

# Publish, look up, retract through the Service's DNS name; exit 1 on any deviation.
DNS_CHECK = r"""
import json, os, sys, urllib.error, urllib.request, uuid
base = os.environ["BASE_URL"]
token = os.environ.get("WRITE_TOKEN", "")

def call(path, body, write=False):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if write and token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()

part = "dns-check-" + uuid.uuid4().hex[:8]
conn = {"uid": "DRO-000-tp_to_trigger", "uri": "tcp://192.0.2.7:5555", "data_type": "TPSet",
        "connection_type": 0}
steps = [
    ("publish", call("/publish", {"partition": part, "connections": [conn]}, True)),
    ("lookup", call("/getconnection/" + part, {"uid_regex": "DRO.*", "data_type": "TPSet"})),
    ("retract-partition", call("/retract-partition", {"partition": part}, True)),
]
print(json.dumps({"base": base, "steps": steps}))
ok = (steps[0][1] == (200, "OK") and steps[1][1][0] == 200
      and [c["uri"] for c in json.loads(steps[1][1][1])] == [conn["uri"]]
      and steps[2][1][0] == 200)
sys.exit(0 if ok else 1)
"""

# Republish every PERIOD seconds and look up every PERIOD/5, for DURATION seconds, printing one
# JSON line per lookup: {"t": unix time, "ok": found our uri, "status": HTTP status or error}.
REPUBLISHER = r"""
import json, os, time, urllib.error, urllib.request
base = os.environ["BASE_URL"]
token = os.environ.get("WRITE_TOKEN", "")
period = float(os.environ.get("PERIOD", "1"))
duration = float(os.environ.get("DURATION", "240"))
part, uid, uri = "restart-probe", "probe-000", "tcp://192.0.2.9:7000"

def call(path, body, write=False):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if write and token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=min(period, 1.0)) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except Exception as exc:
        return type(exc).__name__, ""

end = time.time() + duration
next_publish = 0.0
while time.time() < end:
    now = time.time()
    if now >= next_publish:
        status, _ = call("/publish", {"partition": part, "connections": [
            {"uid": uid, "uri": uri, "data_type": "Probe", "connection_type": 0}]}, True)
        print(json.dumps({"t": now, "op": "publish", "status": status}), flush=True)
        next_publish = now + period
    t = time.time()
    status, text = call("/getconnection/" + part, {"uid_regex": uid, "data_type": "Probe"})
    ok = False
    if status == 200:
        try:
            ok = [c["uri"] for c in json.loads(text)] == [uri]
        except ValueError:
            pass
    print(json.dumps({"t": t, "op": "lookup", "ok": ok, "status": status}), flush=True)
    time.sleep(max(0.0, min(period / 5, next_publish - time.time())))
"""

# Open a TCP connection to HOST PORT within TIMEOUT seconds (arguments), printing one JSON line:
# {"host", "port", "address": resolved IP (absent if the name did not resolve), "reached": bool,
# "error"}. Exits 0 either way: the test judges. Run in a pod, or with `kubectl exec`.
REACH = r"""
import json, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
out = {"host": host, "port": port, "reached": False}
try:
    out["address"] = socket.gethostbyname(host)
    with socket.create_connection((out["address"], port), timeout=timeout):
        out["reached"] = True
except OSError as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out), flush=True)
"""
