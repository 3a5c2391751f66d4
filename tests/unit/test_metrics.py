"""/metrics values are exact: N requests make the counters grow by exactly N."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from connection_flask.metrics import LATENCY_BUCKETS, METRIC_NAMES
from tests.helpers import FakeClock, conn


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


def test_every_documented_metric_is_exported(client: FlaskClient) -> None:
    names = {name for name, _ in scrape(client)}
    for metric in METRIC_NAMES:
        assert any(n == metric or n.startswith(metric + "_") for n in names), metric


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
