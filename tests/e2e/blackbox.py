"""The black-box suite: the wire contract (docs/API.md) checked over HTTP against a base URL.

Both end-to-end modes run exactly these checks: local mode against Gunicorn started with the Helm
chart's container command line (test_local.py), kind mode through a port-forward to the Service of
each install (test_kind.py). Nothing here imports the service: it speaks HTTP only, like a DAQ
client, and reads /metrics as Prometheus would.

Each ``check_*`` function takes a :class:`Target` and raises AssertionError (or calls
pytest.skip) on its own; ``CHECKS`` lists them for ``pytest.mark.parametrize``.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

# The README's example: two DRO links published by a readout application.
README_PARTITION = "ccTest"
README_CONNECTIONS = [
    {
        "uid": "DRO-000-tp_to_trigger",
        "uri": "tcp://192.168.1.100:12345",
        "data_type": "TPSet",
        "connection_type": 0,
    },
    {
        "uid": "DRO-001-tp_to_trigger",
        "uri": "tcp://192.168.1.100:12346",
        "data_type": "TPSet",
        "connection_type": 0,
    },
]

# Endpoints that other parties hit while a check runs (kubelet probes, Prometheus scrapes, the
# suite's own /metrics reads): excluded when counting "the requests this check made".
BACKGROUND_ENDPOINTS = frozenset({"healthz", "readyz", "metrics"})

# A TTL longer than this is not waited out: the expiry check skips.
MAX_TTL_TO_WAIT = 15.0

# Series the contract names (API.md "Operations"): they must exist on /metrics.
CONTRACT_METRICS = (
    "connection_flask_requests_total",
    "connection_flask_request_duration_seconds_bucket",
    "connection_flask_request_duration_seconds_count",
    "connection_flask_partitions",
    "connection_flask_live_entries",
    "connection_flask_lookups_total",
)


@dataclass(frozen=True)
class Target:
    """One running deployment of the service, as seen from the test."""

    base_url: str
    # ENTRY_TTL of that deployment (from its environment); None when unknown.
    entry_ttl: float | None = None
    # CONNECTION_FLASK_WRITE_TOKEN of that deployment; "" when writes are open.
    write_token: str = ""
    # CONNECTION_FLASK_MAX_BODY_BYTES of that deployment.
    max_body_bytes: int = 4 * 1024 * 1024
    label: str = field(default="", compare=False)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.body[:300]!r}"


class Client:
    """A tiny HTTP client: every reply (2xx or not) comes back as a Reply, never an exception."""

    def __init__(self, target: Target, timeout: float = 15.0) -> None:
        self.target = target
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw: bytes | None = None,
        form: Mapping[str, str] | None = None,
        content_type: str | None = None,
        write: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        data = raw
        hdrs = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if write and self.target.write_token:
            hdrs.setdefault("Authorization", f"Bearer {self.target.write_token}")
        req = urllib.request.Request(
            self.target.base_url.rstrip("/") + path, data=data, method=method, headers=hdrs
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Reply(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Reply(err.code, dict(err.headers.items()), err.read())

    def announce_body(self, method: str, path: str, length: int, *, write: bool = False) -> Reply:
        """Send only the headers of a request announcing a ``length``-byte JSON body, then read
        the answer: how a server refuses a body it will not take without reading it."""
        url = urllib.parse.urlsplit(self.target.base_url)
        conn_ = http.client.HTTPConnection(url.hostname or "", url.port, timeout=self.timeout)
        try:
            conn_.putrequest(method, url.path.rstrip("/") + path)
            conn_.putheader("Content-Type", "application/json")
            conn_.putheader("Content-Length", str(length))
            if write and self.target.write_token:
                conn_.putheader("Authorization", f"Bearer {self.target.write_token}")
            conn_.endheaders()
            resp = conn_.getresponse()
            return Reply(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn_.close()

    # The DAQ calls, as clients make them.
    def publish(self, partition: str, connections: list[dict[str, Any]]) -> Reply:
        return self.request(
            "POST",
            "/publish",
            json_body={"partition": partition, "connections": connections},
            write=True,
        )

    def lookup(self, partition: str, uid_regex: str, data_type: str, method: str = "POST") -> Reply:
        return self.request(
            method,
            f"/getconnection/{urllib.parse.quote(partition, safe='')}",
            json_body={"uid_regex": uid_regex, "data_type": data_type},
        )

    def retract(self, partition: str, uids: list[str], data_type: str | None = None) -> Reply:
        conns: list[dict[str, str]] = []
        for uid in uids:
            conn = {"connection_id": uid}
            if data_type is not None:
                conn["data_type"] = data_type
            conns.append(conn)
        return self.request(
            "POST", "/retract", json_body={"partition": partition, "connections": conns}, write=True
        )

    def retract_partition(self, partition: str, *, as_form: bool = True) -> Reply:
        if as_form:
            return self.request(
                "POST", "/retract-partition", form={"partition": partition}, write=True
            )
        return self.request(
            "POST", "/retract-partition", json_body={"partition": partition}, write=True
        )

    def metrics(self) -> Metrics:
        reply = self.request("GET", "/metrics")
        assert reply.status == 200, f"/metrics: {reply}"
        return Metrics.parse(reply.text)


@dataclass(frozen=True)
class Metrics:
    """Samples of one /metrics scrape, keyed by (name, sorted label items)."""

    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return cls(samples)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """Sum of the series of ``name`` whose labels include ``labels`` (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, lbls), v in self.samples.items() if n == name and want <= set(lbls))

    def requests(self) -> Counter[tuple[str, str, str]]:
        """connection_flask_requests_total by (endpoint, method, status)."""
        out: Counter[tuple[str, str, str]] = Counter()
        for (name, lbls), v in self.samples.items():
            if name == "connection_flask_requests_total":
                d = dict(lbls)
                out[(d["endpoint"], d["method"], d["status"])] += int(v)
        return out


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def conn(uid: str, uri: str, data_type: str = "TPSet", connection_type: int = 0) -> dict[str, Any]:
    return {"uid": uid, "uri": uri, "data_type": data_type, "connection_type": connection_type}


def assert_json_error(reply: Reply, what: str) -> None:
    """The contract's answer to bad input: a 4xx with a short JSON body {"error": "..."}."""
    assert 400 <= reply.status < 500, f"{what}: want a 4xx, got {reply}"
    assert reply.headers.get("Content-Type", "").startswith("application/json"), (
        f"{what}: 4xx without a JSON content type: {reply.headers}"
    )
    body = reply.json()
    assert isinstance(body, dict), f"{what}: error body is not an object: {reply}"
    assert isinstance(body.get("error"), str), f"{what}: no 'error' string: {reply}"
    assert body["error"].strip(), f"{what}: empty error message"
    assert len(reply.body) < 2048, f"{what}: error body is not short ({len(reply.body)} bytes)"


# --- the checks ----------------------------------------------------------------------------------


def check_readme_example(target: Target) -> None:
    """Publish the README's two DRO links in ccTest, look them up with DRO.*, retract them."""
    c = Client(target)
    c.retract_partition(README_PARTITION)  # leftovers of an aborted earlier run, if any
    reply = c.publish(README_PARTITION, README_CONNECTIONS)
    assert (reply.status, reply.text) == (200, "OK"), f"publish: {reply}"

    want = [
        {**conn_, "capacity": 0}
        for conn_ in sorted(README_CONNECTIONS, key=lambda x: str(x["uid"]))
    ]
    for method in ("POST", "GET"):
        reply = c.lookup(README_PARTITION, "DRO.*", "TPSet", method=method)
        assert reply.status == 200, f"{method} lookup DRO.*: {reply}"
        assert reply.json() == want, f"{method} lookup DRO.*: {reply}"

    # Full match, exact data_type.
    for regex, data_type in (("DRO", "TPSet"), ("DRO-000", "TPSet"), ("DRO.*", "TPSe")):
        reply = c.lookup(README_PARTITION, regex, data_type)
        assert (reply.status, reply.json()) == (200, []), f"lookup {regex} {data_type}: {reply}"
    reply = c.lookup(README_PARTITION, "DRO-00[1]-tp_to_trigger", "TPSet")
    assert [x["uid"] for x in reply.json()] == ["DRO-001-tp_to_trigger"], str(reply)

    # Republish overwrites by uid.
    moved = {**README_CONNECTIONS[0], "uri": "tcp://192.168.1.101:22345"}
    assert c.publish(README_PARTITION, [moved]).status == 200
    reply = c.lookup(README_PARTITION, "DRO-000-tp_to_trigger", "TPSet")
    assert [x["uri"] for x in reply.json()] == [moved["uri"]], str(reply)

    # Retract one, then a missing one (404, the present one still removed), then the last.
    reply = c.retract(README_PARTITION, ["DRO-000-tp_to_trigger"], "TPSet")
    assert reply.status == 200, f"retract DRO-000: {reply}"
    reply = c.lookup(README_PARTITION, "DRO.*", "TPSet")
    assert [x["uid"] for x in reply.json()] == ["DRO-001-tp_to_trigger"], str(reply)
    reply = c.retract(README_PARTITION, ["DRO-000-tp_to_trigger"])
    assert reply.status == 404, f"retract of an absent uid: {reply}"
    reply = c.retract(README_PARTITION, ["DRO-001-tp_to_trigger"])
    assert reply.status == 200, f"retract DRO-001: {reply}"
    # The partition emptied, so it is gone.
    reply = c.lookup(README_PARTITION, "DRO.*", "TPSet")
    assert reply.status == 404, f"lookup in the emptied partition: {reply}"
    reply = c.retract(README_PARTITION, ["DRO-001-tp_to_trigger"])
    assert reply.status == 404, f"retract in an unknown partition: {reply}"


def check_retract_partial(target: Target) -> None:
    """A retract naming present and absent uids removes the present ones and answers 404."""
    c = Client(target)
    part = unique("e2e-partial")
    links = [conn("a-1", "tcp://10.0.0.1:1"), conn("a-2", "tcp://10.0.0.1:2")]
    assert c.publish(part, links).status == 200
    reply = c.retract(part, ["a-1", "absent"])
    assert reply.status == 404, f"retract with an absent uid: {reply}"
    reply = c.lookup(part, "a-.*", "TPSet")
    assert [x["uid"] for x in reply.json()] == ["a-2"], f"a-1 not removed: {reply}"
    assert c.retract_partition(part).status == 200


def check_retract_partition(target: Target) -> None:
    """Form field (older clients) and JSON body (newer clients); 404 when absent, 400 unnamed."""
    c = Client(target)
    for as_form in (True, False):
        part = unique("e2e-rp")
        assert c.publish(part, [conn("x", "tcp://10.0.0.2:1")]).status == 200
        reply = c.retract_partition(part, as_form=as_form)
        assert (reply.status, reply.text) == (200, "OK"), f"retract-partition {as_form=}: {reply}"
        assert c.lookup(part, ".*", "TPSet").status == 404
        reply = c.retract_partition(part, as_form=as_form)
        assert reply.status == 404, f"second retract-partition {as_form=}: {reply}"
    reply = c.request("POST", "/retract-partition", form={}, write=True)
    assert reply.status == 400, f"retract-partition naming nothing: {reply}"
    reply = c.request("POST", "/retract-partition", json_body={}, write=True)
    assert_json_error(reply, "retract-partition with {}")


def check_publish_skips_incomplete(target: Target) -> None:
    """Connections without uid or uri are skipped, the others stored; key order/spaces free."""
    c = Client(target)
    part = unique("e2e-skip")
    body = (
        '{ "connections" : [ {"uri": "tcp://10.0.0.3:1", "data_type": "T", "connection_type": 0},'
        ' {"uid": "no-uri", "data_type": "T", "connection_type": 0},'
        ' {"connection_type": 1, "data_type": "T", "uri": "tcp://10.0.0.3:2", "uid": "ok"} ],'
        f' "partition" : "{part}" }}'
    )
    reply = c.request(
        "POST", "/publish", raw=body.encode(), content_type="application/json", write=True
    )
    assert (reply.status, reply.text) == (200, "OK"), f"publish: {reply}"
    reply = c.lookup(part, ".*", "T")
    assert reply.json() == [
        {
            "uid": "ok",
            "uri": "tcp://10.0.0.3:2",
            "connection_type": 1,
            "data_type": "T",
            "capacity": 0,
        }
    ], str(reply)
    assert c.retract_partition(part).status == 200


def check_odd_uids_stay_valid_json(target: Target) -> None:
    """Whatever characters a uid holds, the lookup answer is valid JSON carrying it unchanged."""
    c = Client(target)
    part = unique("e2e-odd")
    uids = ['quo"te', "back\\slash", "new\nline", "uni\u00e9\u2603", "tab\tand</script>"]
    links = [conn(u, f"tcp://10.0.0.4:{i}", "Odd") for i, u in enumerate(uids)]
    assert c.publish(part, links).status == 200
    reply = c.lookup(part, "(?s).*", "Odd")  # (?s): "." also matches the newline
    assert reply.status == 200, str(reply)
    assert [x["uid"] for x in reply.json()] == sorted(uids), str(reply)
    assert c.retract_partition(part).status == 200


def check_bad_input(target: Target) -> None:
    """Bad input gets a 4xx with a short JSON error: never a 5xx, never a hang."""
    c = Client(target)
    part = unique("e2e-bad")
    assert c.publish(part, [conn("p", "tcp://10.0.0.5:1")]).status == 200
    lookup_path = f"/getconnection/{part}"
    cases: list[tuple[str, str, str, bytes]] = [
        ("publish: malformed JSON", "POST", "/publish", b'{"partition": "x", "connections": ['),
        ("publish: not an object", "POST", "/publish", b"[1, 2, 3]"),
        (
            "publish: partition not a string",
            "POST",
            "/publish",
            b'{"partition": 5, "connections": []}',
        ),
        (
            "publish: connections not a list",
            "POST",
            "/publish",
            b'{"partition": "x", "connections": 7}',
        ),
        ("publish: no partition", "POST", "/publish", b'{"connections": []}'),
        ("lookup: malformed JSON", "POST", lookup_path, b"{nope"),
        ("lookup: no uid_regex", "POST", lookup_path, b'{"data_type": "TPSet"}'),
        ("lookup: no data_type", "POST", lookup_path, b'{"uid_regex": ".*"}'),
        (
            "lookup: uid_regex not a string",
            "POST",
            lookup_path,
            b'{"uid_regex": 1, "data_type": "T"}',
        ),
        ("lookup: invalid regex", "POST", lookup_path, b'{"uid_regex": "(", "data_type": "TPSet"}'),
        ("retract: no body", "POST", "/retract", b""),
        ("retract: no connections", "POST", "/retract", b'{"partition": "x"}'),
        ("retract: malformed JSON", "POST", "/retract", b'{"partition": '),
    ]
    for what, method, path, raw in cases:
        reply = c.request(
            method,
            path,
            raw=raw,
            content_type="application/json",
            write=not path.startswith("/get"),
        )
        assert_json_error(reply, what)
        if "no uid_regex" in what or "no data_type" in what or what.startswith("retract: no"):
            assert reply.status == 400, f"{what}: {reply}"

    # Oversized body: refused from its Content-Length with a 413 JSON error, before it is sent.
    reply = c.announce_body("POST", "/publish", target.max_body_bytes + 1, write=True)
    assert_json_error(reply, f"publish announcing {target.max_body_bytes + 1} bytes")
    assert reply.status == 413, f"oversized body: {reply}"
    # Sent whole, it is read and dropped, so the client reads the 413 rather than a reset.
    big = b'{"partition": "big", "connections": [], "pad": "' + b"x" * target.max_body_bytes + b'"}'
    reply = c.request("POST", "/publish", raw=big, content_type="application/json", write=True)
    assert_json_error(reply, f"publish of {len(big)} bytes")
    assert reply.status == 413, f"oversized body: {reply}"
    assert c.request("GET", "/healthz").status == 200, "server unwell after an oversized body"

    # A pathological regex neither stalls its request nor blocks others.
    results: list[Reply] = []

    def evil() -> None:
        results.append(c.lookup(part, "(a+)+$", "TPSet"))

    start = time.monotonic()
    thread = threading.Thread(target=evil, daemon=True)
    thread.start()
    assert c.request("GET", "/healthz").status == 200
    thread.join(timeout=10)
    assert not thread.is_alive(), "lookup with (a+)+$ still running after 10 s"
    assert time.monotonic() - start < 10
    assert results and results[0].status < 500, f"(a+)+$: {results}"
    # The server still answers normal lookups.
    assert [x["uid"] for x in c.lookup(part, "p", "TPSet").json()] == ["p"]
    assert c.retract_partition(part).status == 200


def check_write_token(target: Target) -> None:
    """When the deployment sets a write token, writes without it are refused with 401."""
    if not target.write_token:
        pytest.skip("this deployment sets no CONNECTION_FLASK_WRITE_TOKEN: writes are open")
    c = Client(target)
    part = unique("e2e-token")
    links = [conn("t", "tcp://10.0.0.6:1")]
    body = {"partition": part, "connections": links}
    for auth in (None, "Bearer wrong-token", f"Basic {target.write_token}"):
        headers = {"Authorization": auth} if auth else {}
        reply = c.request("POST", "/publish", json_body=body, headers=headers)
        assert reply.status == 401, f"publish with Authorization={auth!r}: {reply}"
        assert_json_error(reply, "unauthorized publish")
    assert c.lookup(part, ".*", "TPSet").status == 404, "a refused publish created the partition"
    reply = c.publish(part, links)
    assert reply.status == 200, f"publish with the right token: {reply}"
    for path, payload in (("/retract-partition", {"partition": part}), ("/purge", None)):
        method = "GET" if payload is None else "POST"
        reply = c.request(method, path, json_body=payload)
        assert reply.status == 401, f"{path} without the token: {reply}"
    assert c.retract_partition(part).status == 200


def check_ops_endpoints(target: Target) -> None:
    """/healthz, /readyz (and the newer server's /live, /ready), /metrics in text exposition."""
    c = Client(target)
    for path in ("/healthz", "/readyz", "/live", "/ready"):
        reply = c.request("GET", path)
        assert reply.status == 200, f"GET {path}: {reply}"
    reply = c.request("GET", "/metrics")
    assert reply.status == 200, f"/metrics: {reply}"
    assert reply.headers.get("Content-Type", "").startswith("text/plain"), reply.headers
    names = Metrics.parse(reply.text).names()
    missing = [m for m in CONTRACT_METRICS if m not in names]
    assert not missing, f"/metrics lacks {missing}"
    reply = c.request("GET", "/stats")
    assert reply.status == 200 and "<h1>Connection server statistics</h1>" in reply.text, str(reply)
    assert " calls to publish " in reply.text and " calls to lookup " in reply.text, reply.text


def check_request_counter_exact(target: Target) -> None:
    """connection_flask_requests_total grows by exactly the requests made, label by label."""
    c = Client(target)
    part = unique("e2e-count")
    before = c.metrics()
    expected: Counter[tuple[str, str, str]] = Counter()

    def made(reply: Reply, endpoint: str, method: str) -> None:
        expected[(endpoint, method, str(reply.status))] += 1

    made(c.publish(part, [conn("n-1", "tcp://10.0.0.7:1")]), "publish", "POST")
    made(c.publish(part, [conn("n-2", "tcp://10.0.0.7:2")]), "publish", "POST")
    made(c.lookup(part, "n-.*", "TPSet"), "getconnection", "POST")
    made(c.lookup(part, "n-1", "TPSet", method="GET"), "getconnection", "GET")
    made(c.lookup(part, "zzz", "TPSet"), "getconnection", "POST")
    made(c.lookup(unique("e2e-nope"), ".*", "TPSet"), "getconnection", "POST")
    made(
        c.request("POST", "/publish", raw=b"{bad", content_type="application/json", write=True),
        "publish",
        "POST",
    )
    made(c.retract(part, ["n-1"]), "retract", "POST")
    made(c.retract_partition(part), "retract_partition", "POST")
    made(c.request("GET", "/stats"), "stats", "GET")
    after = c.metrics()

    assert expected == Counter(
        {
            ("publish", "POST", "200"): 2,
            ("getconnection", "POST", "200"): 2,
            ("getconnection", "GET", "200"): 1,
            ("getconnection", "POST", "404"): 1,
            ("publish", "POST", "400"): 1,
            ("retract", "POST", "200"): 1,
            ("retract_partition", "POST", "200"): 1,
            ("stats", "GET", "200"): 1,
        }
    ), f"the requests did not answer as the contract says: {expected}"
    grown = after.requests()
    grown.subtract(before.requests())
    delta = {k: v for k, v in grown.items() if v and k[0] not in BACKGROUND_ENDPOINTS}
    assert delta == dict(expected), f"requests_total grew by {delta}, want {dict(expected)}"
    # The /metrics read that took `before` is counted by the time `after` is taken.
    assert grown[("metrics", "GET", "200")] >= 1, "the /metrics request itself was not counted"

    lookups = {
        o: after.value("connection_flask_lookups_total", outcome=o)
        - before.value("connection_flask_lookups_total", outcome=o)
        for o in ("hit", "miss", "unknown_partition")
    }
    assert lookups == {"hit": 2, "miss": 1, "unknown_partition": 1}, f"lookups_total grew {lookups}"
    count = "connection_flask_request_duration_seconds_count"
    assert (
        after.value(count, endpoint="getconnection") - before.value(count, endpoint="getconnection")
        == 4
    ), "the latency histogram did not observe each lookup once"


def check_gauges(target: Target) -> None:
    """connection_flask_partitions and _live_entries follow publishes and retracts."""
    c = Client(target)
    part = unique("e2e-gauge")
    before = c.metrics()
    links = [conn(f"g-{i}", f"tcp://10.0.0.8:{i}") for i in range(3)]
    assert c.publish(part, links).status == 200
    during = c.metrics()
    assert c.retract_partition(part).status == 200
    after = c.metrics()
    for name, grew in (("connection_flask_partitions", 1), ("connection_flask_live_entries", 3)):
        assert during.value(name) - before.value(name) == grew, (
            f"{name}: {before.value(name)} -> {during.value(name)}, want +{grew}"
        )
        assert after.value(name) == before.value(name), f"{name} did not drop after the retract"


def check_ttl_expiry(target: Target) -> None:
    """An entry older than ENTRY_TTL is invisible (200 []); republishing revives it."""
    ttl = target.entry_ttl
    if ttl is None or ttl > MAX_TTL_TO_WAIT:
        pytest.skip(f"ENTRY_TTL here is {ttl}; only TTLs <= {MAX_TTL_TO_WAIT} s are waited out")
    c = Client(target)
    part = unique("e2e-ttl")
    link = conn("ttl-1", "tcp://10.0.0.9:1")
    assert c.publish(part, [link]).status == 200
    published = time.monotonic()
    reply = c.lookup(part, "ttl-1", "TPSet")
    assert [x["uid"] for x in reply.json()] == ["ttl-1"], f"fresh entry not visible: {reply}"
    time.sleep(max(0.0, published + ttl + 1.0 - time.monotonic()))
    reply = c.lookup(part, "ttl-1", "TPSet")
    assert (reply.status, reply.json()) == (200, []), f"entry still visible after {ttl} s: {reply}"
    assert c.publish(part, [link]).status == 200
    reply = c.lookup(part, "ttl-1", "TPSet")
    assert [x["uid"] for x in reply.json()] == ["ttl-1"], f"republish did not revive: {reply}"
    assert c.retract_partition(part).status == 200


CHECKS: list[Callable[[Target], None]] = [
    check_ops_endpoints,
    check_readme_example,
    check_retract_partial,
    check_retract_partition,
    check_publish_skips_incomplete,
    check_odd_uids_stay_valid_json,
    check_bad_input,
    check_write_token,
    check_request_counter_exact,
    check_gauges,
    check_ttl_expiry,
]
CHECK_IDS = [f.__name__.removeprefix("check_") for f in CHECKS]


# --- helpers both modes use ----------------------------------------------------------------------


def wait_until_ready(
    target: Target, timeout: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Poll /readyz until 200; AssertionError after ``timeout`` or when ``alive()`` turns False."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    c = Client(target, timeout=3)
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"server at {target.base_url} exited before it was ready")
        try:
            reply = c.request("GET", "/readyz")
            if reply.status == 200:
                return
            last = str(reply)
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"{target.base_url}/readyz not 200 after {timeout} s: {last}")


@contextmanager
def background_traffic(target: Target, period: float = 0.02) -> Iterator[Callable[[], int]]:
    """Publish and look up every ``period`` seconds until the block ends.

    Yields a function returning how many requests were answered so far (all counted by
    connection_flask_requests_total under publish/getconnection)."""
    c = Client(target)
    part = unique("e2e-traffic")
    stop = threading.Event()
    made = [0]
    errors: list[str] = []

    def run() -> None:
        i = 0
        while not stop.is_set():
            for reply in (
                c.publish(part, [conn(f"t-{i % 5}", f"tcp://10.0.1.1:{i}")]),
                c.lookup(part, "t-.*", "TPSet"),
            ):
                made[0] += 1
                if reply.status != 200:
                    errors.append(str(reply))
            i += 1
            stop.wait(period)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield lambda: made[0]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "traffic thread did not stop"
    assert not errors, f"background traffic got errors: {errors[:5]}"
    made[0] += 1 if c.retract_partition(part).status == 200 else 0


def is_number(value: str) -> bool:
    """True for a Prometheus sample value that is a finite number (not NaN/Inf)."""
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
