"""/metrics values are exact: N requests make the counters grow by exactly N."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from connection_flask import multiprocess
from connection_flask.metrics import LATENCY_BUCKETS, METRIC_NAMES
from tests.helpers import FakeClock, conn
from tests.redis_server import RedisServer


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.get_data(as_text=True))
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def missing_metrics(names: set[str] | list[str]) -> set[str]:
    """Documented metrics without a sample among these names."""
    return {m for m in METRIC_NAMES if not any(n == m or n.startswith(m + "_") for n in names)}


def test_every_documented_metric_is_exported(client: FlaskClient) -> None:
    assert missing_metrics({name for name, _ in scrape(client)}) == set()


def test_requests_by_endpoint_method_and_status_are_exact(client: FlaskClient) -> None:
    before = scrape(client)
    for i in range(7):
        client.post("/publish", json={"partition": "p", "connections": [conn(f"u{i}")]})
    for _ in range(3):
        client.post("/publish", data=b"{")
    after = scrape(client)
    total = "connection_flask_requests_total"
    labels = {"endpoint": "publish", "method": "POST"}
    assert (
        value(after, total, **labels, status="200") - value(before, total, **labels, status="200")
        == 7
    )
    assert (
        value(after, total, **labels, status="400") - value(before, total, **labels, status="400")
        == 3
    )
    count = "connection_flask_request_duration_seconds_count"
    assert value(after, count, endpoint="publish") - value(before, count, endpoint="publish") == 10
    rejected = "connection_flask_rejected_requests_total"
    assert value(after, rejected, reason="invalid_json") == 3


def test_latency_buckets_span_100us_to_10s(client: FlaskClient) -> None:
    assert LATENCY_BUCKETS[0] == 0.0001 and LATENCY_BUCKETS[-1] == 10.0
    samples = scrape(client)
    les = {
        dict(labels)["le"]
        for name, labels in samples
        if name == "connection_flask_request_duration_seconds_bucket"
        and dict(labels)["endpoint"] == "getconnection"
    }
    assert {"0.0001", "10.0", "+Inf"} <= les


def test_published_lookups_and_results(client: FlaskClient) -> None:
    client.post("/publish", json={"partition": "p", "connections": [conn("a"), conn("b")]})
    client.post("/publish", json={"partition": "p", "connections": [conn("a")]})
    for regex in (".*", "a", "zzz"):
        client.post("/getconnection/p", json={"uid_regex": regex, "data_type": "TPSet"})
    client.post("/getconnection/nope", json={"uid_regex": ".*", "data_type": "TPSet"})
    s = scrape(client)
    assert value(s, "connection_flask_connections_published_total") == 3
    assert value(s, "connection_flask_lookups_total", outcome="hit") == 2
    assert value(s, "connection_flask_lookups_total", outcome="miss") == 1
    assert value(s, "connection_flask_lookups_total", outcome="unknown_partition") == 1
    assert value(s, "connection_flask_lookup_results_total") == 3


def sweep(app: Flask) -> None:
    app.extensions["connection_flask"].registry.sweep_once()


def test_partition_and_entry_gauges(app: Flask, client: FlaskClient, clock: FakeClock) -> None:
    client.post("/publish", json={"partition": "p", "connections": [conn("a"), conn("b")]})
    client.post("/publish", json={"partition": "q", "connections": [conn("c")]})
    s = scrape(client)
    assert value(s, "connection_flask_partitions") == 2
    assert value(s, "connection_flask_stored_entries") == 3
    assert value(s, "connection_flask_live_entries") == 3, "new entries are live at once"
    clock.advance(10)
    client.post("/publish", json={"partition": "q", "connections": [conn("c")]})
    sweep(app)
    s = scrape(client)
    assert value(s, "connection_flask_stored_entries") == 3
    assert value(s, "connection_flask_live_entries") == 1, "expiry shows after a sweep"


def test_expired_and_purged_counters(app: Flask, client: FlaskClient, clock: FakeClock) -> None:
    client.post("/publish", json={"partition": "p", "connections": [conn("a"), conn("b")]})
    clock.advance(10)
    client.get("/purge")
    client.post("/publish", json={"partition": "q", "connections": [conn("c")]})
    clock.advance(10 + 60 + 1)
    for _ in range(3):
        client.post("/publish", json={"partition": "r", "connections": [conn("d")]})
    assert value(scrape(client), "connection_flask_entries_expired_total") == 0, (
        "publishes do not sweep"
    )
    sweep(app)
    s = scrape(client)
    assert value(s, "connection_flask_entries_purged_total") == 2
    assert value(s, "connection_flask_entries_expired_total") == 1
    assert value(s, "connection_flask_partitions") == 1


def test_entries_reclaimed_at_a_limit_count_as_expired(clock: FakeClock) -> None:
    from connection_flask.app import create_app
    from connection_flask.settings import Settings

    client = create_app(Settings(max_partitions=1), clock=clock).test_client()
    client.post("/publish", json={"partition": "p", "connections": [conn("a"), conn("b")]})
    clock.advance(10 + 60)
    r = client.post("/publish", json={"partition": "q", "connections": [conn("c")]})
    assert r.status_code == 200
    s = scrape(client)
    assert value(s, "connection_flask_entries_expired_total") == 2
    assert value(s, "connection_flask_partitions") == 1


def test_label_values_stay_bounded(client: FlaskClient) -> None:
    for i in range(5):
        client.open(f"/random/{i}", method="BREW")
    s = scrape(client)
    endpoints = {
        dict(labels).get("endpoint")
        for name, labels in s
        if name == "connection_flask_requests_total"
    }
    methods = {
        dict(labels).get("method")
        for name, labels in s
        if name == "connection_flask_requests_total"
    }
    assert "other" in endpoints and not any(e and e.startswith("/") for e in endpoints)
    assert methods <= {"GET", "POST", "other"}


def test_build_info_carries_the_version(client: FlaskClient) -> None:
    from connection_flask import __version__

    s = scrape(client)
    assert any(
        name == "connection_flask_build_info" and dict(labels)["version"] == __version__
        for name, labels in s
    )


def test_two_apps_in_one_process_do_not_collide() -> None:
    from connection_flask.app import create_app

    a, b = create_app().test_client(), create_app().test_client()
    a.post("/publish", json={"partition": "p", "connections": [conn("x")]})
    assert value(scrape(b), "connection_flask_connections_published_total") == 0


def test_metrics_content_type_is_prometheus_text_with_one_charset(client: FlaskClient) -> None:
    content_type = client.get("/metrics").headers["Content-Type"]
    assert content_type.startswith("text/plain; version=")
    assert content_type.count("charset") == 1, content_type


def test_one_process_exports_its_process_metrics(client: FlaskClient) -> None:
    names = {name for name, _ in scrape(client)}
    assert "process_cpu_seconds_total" in names and "python_info" in names


# --- several processes: prometheus_client's multiprocess mode --------------------------------

# One "worker": builds the app with PROMETHEUS_MULTIPROC_DIR set (as Gunicorn's master leaves it),
# publishes argv[2] connections one at a time to partition argv[1], prints its /metrics body.
WORKER = """
import sys
from connection_flask.app import create_app
client = create_app().test_client()
for i in range(int(sys.argv[2])):
    uri = "tcp://10.0.0.1:%d" % (1000 + i)
    c = {"uid": "u%d" % i, "uri": uri, "data_type": "TPSet", "connection_type": 0}
    r = client.post("/publish", json={"partition": sys.argv[1], "connections": [c]})
    assert r.status_code == 200
sys.stdout.write(client.get("/metrics").get_data(as_text=True))
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def worker_scrape(directory: Path, partition: str, publishes: int) -> tuple[Samples, list[str]]:
    """Run one worker process to its end; its scrape's samples, and every sample name in order."""
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, partition, str(publishes)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    samples = [s for f in text_string_to_metric_families(proc.stdout) for s in f.samples]
    return {(s.name, frozenset(s.labels.items())): s.value for s in samples}, [
        s.name for s in samples
    ]


def test_several_processes_report_their_total(tmp_path: Path) -> None:
    worker_scrape(tmp_path, "a", 3)
    s, _ = worker_scrape(tmp_path, "b", 5)
    assert value(s, "connection_flask_connections_published_total") == 8
    ok = {"endpoint": "publish", "method": "POST", "status": "200"}
    assert value(s, "connection_flask_requests_total", **ok) == 8
    assert value(s, "connection_flask_request_duration_seconds_count", endpoint="publish") == 8
    bucket = "connection_flask_request_duration_seconds_bucket"
    assert value(s, bucket, endpoint="publish", le="+Inf") == 8


def test_store_gauges_and_build_info_are_reported_once_not_summed(tmp_path: Path) -> None:
    worker_scrape(tmp_path, "a", 3)
    s, names = worker_scrape(tmp_path, "b", 5)
    # Each process here has its own memory store: the scraping one holds partition b alone, so a
    # gauge summed over the workers' files would say 2 partitions and 8 entries.
    assert value(s, "connection_flask_partitions") == 1
    assert value(s, "connection_flask_stored_entries") == 5
    for gauge in ("partitions", "stored_entries", "live_entries", "build_info"):
        assert names.count(f"connection_flask_{gauge}") == 1, gauge
    [build] = [v for (n, _), v in s.items() if n == "connection_flask_build_info"]
    assert build == 1


def test_several_processes_export_no_one_process_metrics(tmp_path: Path) -> None:
    _, names = worker_scrape(tmp_path, "a", 1)
    assert not [n for n in names if n.startswith("process_")]
    assert "python_info" in names
    assert missing_metrics(names) == set()


# --- the Gunicorn master's side (connection_flask.multiprocess) ------------------------------


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: object) -> None:
        self.lines.append(msg % args)

    warning = info


def test_one_worker_without_a_directory_stays_single_process(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    assert multiprocess.prepare(1, str(tmp_path), Log(), environ) is None
    assert environ == {} and list(tmp_path.iterdir()) == []


def test_several_workers_get_a_fresh_directory_under_the_tmp_dir(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    created = multiprocess.prepare(2, str(tmp_path), Log(), environ)
    assert created is not None and Path(created).parent == tmp_path
    assert environ == {multiprocess.ENV: created}
    multiprocess.remove(created)
    assert not Path(created).exists()


def test_a_given_directory_is_wiped_of_old_counts_only(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    environ = {multiprocess.ENV: str(tmp_path)}
    assert multiprocess.prepare(1, None, Log(), environ) is None, "not ours to remove at exit"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_dead_workers_live_gauges_go_and_its_counters_stay(tmp_path: Path) -> None:
    worker_scrape(tmp_path, "a", 1)
    [pid] = {p.stem.rpartition("_")[2] for p in tmp_path.glob("counter_*.db")}
    assert (tmp_path / f"gauge_livemax_{pid}.db").exists()
    multiprocess.mark_dead(int(pid), {multiprocess.ENV: str(tmp_path)})
    assert not (tmp_path / f"gauge_livemax_{pid}.db").exists()
    assert (tmp_path / f"counter_{pid}.db").exists()


def test_a_scrape_with_redis_down_keeps_the_counters_and_drops_the_store_gauges(
    own_redis: RedisServer,
) -> None:
    from connection_flask.app import create_app
    from connection_flask.settings import Settings
    from tests.conftest import close_store

    app = create_app(Settings(store=own_redis.url, store_timeout=0.2, debug_level=0))
    try:
        s = scrape(app.test_client())  # own_redis never started: nothing listens there
    finally:
        close_store(app)
    assert "connection_flask_partitions" not in {name for name, _ in s}
    assert missing_metrics({name for name, _ in s}) == {
        "connection_flask_partitions",
        "connection_flask_stored_entries",
        "connection_flask_live_entries",
    }


def test_the_gunicorn_master_imports_neither_prometheus_client_nor_redis() -> None:
    # The master loads the config, the worker class and the logger class before it forks. With
    # prometheus_client imported there, multiprocess mode is off (each worker reports its own
    # counts); with redis, ssl is imported before gevent patches it in the workers.
    code = (
        "import sys, connection_flask.gunicorn_conf, connection_flask.worker; "
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', 'redis'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
