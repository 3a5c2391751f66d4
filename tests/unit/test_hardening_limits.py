"""Every limit of issue 6: a 4xx whose JSON error names the setting, a rejection counter in
/metrics, and nothing stored. Plus the write/read tokens."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from connection_flask.app import create_app
from connection_flask.registry import Limits, Registry
from connection_flask.settings import Settings, SettingsError
from tests.helpers import FakeClock, conn

SMALL = Settings(
    debug_level=0,
    max_body_bytes=2000,
    max_connections_per_publish=3,
    max_uid_length=8,
    max_uri_length=16,
    max_data_type_length=4,
    max_partition_length=5,
    max_regex_length=10,
    max_partitions=2,
    max_entries_per_partition=3,
    max_entries=4,
)


def _client(settings: Settings = SMALL) -> FlaskClient:
    return create_app(settings, clock=FakeClock()).test_client()


def _rejected(client: FlaskClient, reason: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    m = re.search(
        rf'^connection_flask_rejected_requests_total\{{reason="{reason}"\}} (\S+)$', text, re.M
    )
    assert m, f"no rejection series for {reason}"
    return float(m.group(1))


def _publish(client: FlaskClient, partition: str, *conns: dict[str, Any], **kw: Any) -> Any:
    return client.post("/publish", json={"partition": partition, "connections": list(conns)}, **kw)


def _c(uid: str, **kw: Any) -> dict[str, Any]:
    return conn(uid, uri=kw.pop("uri", "tcp://a:1"), data_type=kw.pop("data_type", "T"), **kw)


@pytest.mark.parametrize(
    ("body", "status", "reason", "names"),
    [
        (
            {"partition": "p", "connections": [_c(f"u{i}") for i in range(4)]},
            400,
            "too_many_connections",
            "CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH (3)",
        ),
        (
            {"partition": "p", "connections": [_c("uid-too-long")]},
            400,
            "too_long",
            "CONNECTION_FLASK_MAX_UID_LENGTH (8)",
        ),
        (
            {"partition": "p", "connections": [_c("u", uri="tcp://far-too-long:1")]},
            400,
            "too_long",
            "CONNECTION_FLASK_MAX_URI_LENGTH (16)",
        ),
        (
            {"partition": "p", "connections": [_c("u", data_type="TPSet")]},
            400,
            "too_long",
            "CONNECTION_FLASK_MAX_DATA_TYPE_LENGTH (4)",
        ),
        (
            {"partition": "longer", "connections": [_c("u")]},
            400,
            "too_long",
            "CONNECTION_FLASK_MAX_PARTITION_LENGTH (5)",
        ),
    ],
)
def test_publish_over_a_field_limit_is_refused_naming_the_setting(
    body: dict[str, Any], status: int, reason: str, names: str
) -> None:
    client = _client()
    before = _rejected(client, reason)
    r = client.post("/publish", json=body)
    assert r.status_code == status
    assert names in r.get_json()["error"]
    assert _rejected(client, reason) == before + 1
    lookup = {"uid_regex": ".*", "data_type": "T"}
    assert client.post(f"/getconnection/{body['partition']}", json=lookup).status_code == 404
    assert client.get("/").get_data(as_text=True).count("<h3>") == 0, "nothing stored"


def test_body_over_max_body_bytes_is_413_naming_the_setting() -> None:
    client = _client()
    r = client.post("/publish", data=b"{" + b" " * 3000 + b"}", content_type="application/json")
    assert r.status_code == 413
    assert "CONNECTION_FLASK_MAX_BODY_BYTES (2000 bytes)" in r.get_json()["error"]
    assert _rejected(client, "body_too_large") == 1


def test_body_over_max_body_bytes_is_refused_on_every_write_endpoint() -> None:
    client = _client()
    big = b"{" + b" " * 3000 + b"}"
    for path in ("/publish", "/retract", "/retract-partition", "/getconnection/p"):
        assert client.post(path, data=big, content_type="application/json").status_code == 413
    form = b"partition=" + b"x" * 3000
    r = client.post(
        "/retract-partition", data=form, content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 413


def test_regex_longer_than_the_limit_is_400_naming_it() -> None:
    client = _client()
    _publish(client, "p", _c("u"))
    r = client.post("/getconnection/p", json={"uid_regex": "u" * 11, "data_type": "T"})
    assert r.status_code == 400
    assert "CONNECTION_FLASK_MAX_REGEX_LENGTH (10)" in r.get_json()["error"]
    assert _rejected(client, "too_long") == 1


def test_a_pattern_needing_too_much_re2_memory_is_400_not_cached_memory() -> None:
    client = _client(Settings(debug_level=0))
    _publish(client, "p", _c("u"))
    r = client.post("/getconnection/p", json={"uid_regex": r"\pL{0,200}", "data_type": "T"})
    assert r.status_code == 400
    assert "too large" in r.get_json()["error"]
    assert _rejected(client, "invalid_regex") == 1


def test_new_partition_past_max_partitions_is_429_and_existing_ones_still_accept() -> None:
    client = _client()
    assert _publish(client, "a", _c("1")).status_code == 200
    assert _publish(client, "b", _c("1")).status_code == 200
    r = _publish(client, "c", _c("1"))
    assert r.status_code == 429
    assert "CONNECTION_FLASK_MAX_PARTITIONS=2" in r.get_json()["error"]
    assert _rejected(client, "registry_full") == 1
    assert (
        client.post("/getconnection/c", json={"uid_regex": ".*", "data_type": "T"}).status_code
        == 404
    )
    assert _publish(client, "a", _c("2")).status_code == 200
    # Retracting a partition frees its slot.
    assert client.post("/retract-partition", json={"partition": "b"}).status_code == 200
    assert _publish(client, "c", _c("1")).status_code == 200


def test_entries_past_the_partition_limit_are_429_and_nothing_of_that_publish_is_stored() -> None:
    client = _client()
    assert _publish(client, "a", _c("1"), _c("2")).status_code == 200
    r = _publish(client, "a", _c("3"), _c("4"))
    assert r.status_code == 429
    assert "CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION=3" in r.get_json()["error"]
    found = client.post("/getconnection/a", json={"uid_regex": ".*", "data_type": "T"}).get_json()
    assert [e["uid"] for e in found] == ["1", "2"]
    # Republishing what is there never counts as growth.
    assert _publish(client, "a", _c("1"), _c("2"), _c("3")).status_code == 200


def test_entries_past_the_total_limit_are_429_across_partitions() -> None:
    client = _client()
    assert _publish(client, "a", _c("1"), _c("2"), _c("3")).status_code == 200
    assert _publish(client, "b", _c("1")).status_code == 200
    r = _publish(client, "b", _c("2"))
    assert r.status_code == 429
    assert "CONNECTION_FLASK_MAX_ENTRIES=4" in r.get_json()["error"]
    # Retracting frees room again.
    retract = {"partition": "a", "connections": [{"connection_id": "1"}]}
    assert client.post("/retract", json=retract).status_code == 200
    assert _publish(client, "b", _c("2")).status_code == 200


def test_total_entry_count_follows_retract_purge_sweep_and_reset() -> None:
    clock = FakeClock()
    reg = Registry(10, 5, clock=clock, limits=Limits(entries=3))
    from connection_flask.registry import Connection

    def c(uid: str) -> Connection:
        return Connection(uid, "u", "T", 0)

    reg.publish("a", [c("1"), c("2")])
    reg.publish("b", [c("1")])
    assert reg.retract_partition("b")
    reg.publish("b", [c("9")])  # room again after retract-partition
    clock.advance(11)
    assert reg.purge() == 3
    reg.publish("a", [c("3"), c("4"), c("5")])  # purge freed all three
    clock.advance(100)
    reg.publish("c", [])  # the sweep removes the long-expired ones
    reg.reset()
    reg.publish("a", [c("6"), c("7"), c("8")])
    assert reg.counts()[1] == 3


def test_retract_connection_id_over_uid_limit_is_400() -> None:
    client = _client()
    _publish(client, "a", _c("1"))
    body = {"partition": "a", "connections": [{"connection_id": "x" * 9}]}
    r = client.post("/retract", json=body)
    assert r.status_code == 400
    assert "CONNECTION_FLASK_MAX_UID_LENGTH (8)" in r.get_json()["error"]


def test_stats_peaks_stay_bounded_while_partitions_come_and_go() -> None:
    reg = Registry(10, 5, clock=FakeClock())
    from connection_flask.registry import Connection

    for i in range(2000):
        reg.publish(f"p{i}", [Connection("u", "u", "T", 0)])
        reg.retract_partition(f"p{i}")
    assert len(reg.stats().max_entries) <= 2 * 0 + 64 + 1


# ----------------------------------------------------------------------------- tokens

TOKEN = "w-" + "a" * 30
READ = "r-" + "b" * 30


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/publish", {"partition": "p", "connections": [_c("u")]}),
        ("POST", "/retract", {"partition": "p", "connections": [{"connection_id": "u"}]}),
        ("POST", "/retract-partition", {"partition": "p"}),
        ("GET", "/purge", None),
        ("GET", "/resetStats", None),
        ("GET", "/resetService", None),
    ],
)
def test_writes_need_the_bearer_token_when_one_is_set(
    method: str, path: str, body: dict[str, Any] | None
) -> None:
    client = _client(Settings(debug_level=0, write_token=TOKEN))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = client.open(path, method=method, json=body, headers=headers)
        assert r.status_code == 401, headers
        assert "CONNECTION_FLASK_WRITE_TOKEN" in r.get_json()["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    ok = client.open(path, method=method, json=body, headers={"Authorization": f"bearer {TOKEN}"})
    assert ok.status_code in (200, 404)
    assert _rejected(client, "unauthorized") == 3


def test_reads_stay_open_with_only_a_write_token() -> None:
    client = _client(Settings(debug_level=0, write_token=TOKEN))
    assert (
        _publish(client, "p", _c("u"), headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        == 200
    )
    found = client.post("/getconnection/p", json={"uid_regex": "u", "data_type": "T"})
    assert found.status_code == 200
    assert len(found.get_json()) == 1
    for path in ("/", "/stats", "/metrics", "/healthz", "/readyz"):
        assert client.get(path).status_code == 200, path


def test_read_token_guards_lookups_and_pages_but_not_probes_or_metrics() -> None:
    client = _client(Settings(debug_level=0, write_token=TOKEN, read_token=READ))
    lookup = {"uid_regex": "u", "data_type": "T"}
    assert client.post("/getconnection/p", json=lookup).status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/stats").status_code == 401
    for token in (READ, TOKEN):
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/getconnection/p", json=lookup, headers=auth).status_code == 404
        assert client.get("/stats", headers=auth).status_code == 200
    # The read token does not grant writes.
    r = _publish(client, "p", _c("u"), headers={"Authorization": f"Bearer {READ}"})
    assert r.status_code == 401
    for path in ("/metrics", "/healthz", "/readyz"):
        assert client.get(path).status_code == 200


def test_token_from_a_secret_file_with_a_trailing_newline_still_matches() -> None:
    settings = Settings.from_env({"CONNECTION_FLASK_WRITE_TOKEN": TOKEN + "\n"})
    client = _client(settings)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _publish(client, "p", _c("u"), headers=auth).status_code == 200


def test_token_that_cannot_travel_in_a_header_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="CONNECTION_FLASK_WRITE_TOKEN must be printable"):
        Settings.from_env({"CONNECTION_FLASK_WRITE_TOKEN": "two words"})
    with pytest.raises(SettingsError, match="CONNECTION_FLASK_READ_TOKEN must be printable"):
        Settings.from_env({"CONNECTION_FLASK_READ_TOKEN": "caf\u00e9"})


def test_the_token_is_never_logged_even_at_debug_level_3(caplog: pytest.LogCaptureFixture) -> None:
    client = _client(Settings(debug_level=3, write_token=TOKEN, read_token=READ))
    caplog.set_level("DEBUG")
    _publish(client, "p", _c("u"), headers={"Authorization": f"Bearer {TOKEN}"})
    _publish(client, "p", _c("u"), headers={"Authorization": "Bearer nope"})
    client.post(
        "/getconnection/p",
        json={"uid_regex": "u", "data_type": "T"},
        headers={"Authorization": f"Bearer {READ}"},
    )
    assert TOKEN not in caplog.text
    assert READ not in caplog.text
    assert "nope" not in caplog.text
    assert TOKEN not in repr(client.application.extensions)


def test_limits_rejected_on_bad_json_shape_count_as_invalid_request() -> None:
    client = _client()
    r = client.post(
        "/publish", data=orjson.dumps({"partition": 5}), content_type="application/json"
    )
    assert r.status_code == 400
    assert _rejected(client, "invalid_request") == 1
