"""The JSON admin API (/api/v1) through Flask's test client: the partition list, pages of
connections with their filters and cursor, the index header, and every bad request's 400."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from connection_flask.admin_api import MAX_LIMIT, SCAN_BUDGET
from connection_flask.app import create_app
from connection_flask.settings import Settings
from tests.helpers import FakeClock, conn

URL = "/api/v1/partitions/p/connections"


def publish(client: FlaskClient, partition: str, *conns: dict[str, Any]) -> None:
    body = {"partition": partition, "connections": list(conns)}
    assert client.post("/publish", json=body).status_code == 200


def uids(client: FlaskClient, query: str = "", partition: str = "p") -> list[str]:
    r = client.get(f"/api/v1/partitions/{partition}/connections?{query}")
    assert r.status_code == 200, r.json
    return [e["uid"] for e in r.json["connections"]]


def test_partitions_lists_each_with_live_and_expired_counts_sorted_by_name(
    app: Any, client: FlaskClient, clock: FakeClock
) -> None:
    publish(client, "old", conn("x"))
    clock.advance(Settings().entry_ttl + 1)
    publish(client, "b", conn("x"), conn("y"))
    publish(client, "a", conn("x"))
    app.extensions["connection_flask"].registry.sweep_once()
    r = client.get("/api/v1/partitions")
    assert r.status_code == 200
    assert r.json["partitions"] == [
        {"name": "a", "live": 1, "expired": 0},
        {"name": "b", "live": 2, "expired": 0},
        {"name": "old", "live": 0, "expired": 1},
    ]
    assert int(r.headers["X-Registry-Index"]) == r.json["index"]


def test_partitions_of_an_empty_registry_is_an_empty_list(client: FlaskClient) -> None:
    assert client.get("/api/v1/partitions").json["partitions"] == []


def test_connections_gives_every_field_with_age_and_expired_flag(
    client: FlaskClient, clock: FakeClock
) -> None:
    publish(client, "p", conn("old", "tcp://10.0.0.1:1", capacity=7))
    clock.advance(Settings().entry_ttl + 0.5)
    publish(client, "p", conn("new", "tcp://10.0.0.2:2", "Other", connection_type=1))
    r = client.get(URL)
    assert r.status_code == 200
    assert r.json == {
        "partition": "p",
        "index": int(r.headers["X-Registry-Index"]),
        "connections": [
            {
                "uid": "new",
                "uri": "tcp://10.0.0.2:2",
                "data_type": "Other",
                "connection_type": 1,
                "capacity": 0,
                "age_seconds": 0.0,
                "expired": False,
            },
            {
                "uid": "old",
                "uri": "tcp://10.0.0.1:1",
                "data_type": "TPSet",
                "connection_type": 0,
                "capacity": 7,
                "age_seconds": 10.5,
                "expired": True,
            },
        ],
        "next_cursor": None,
    }


def test_pages_follow_the_cursor_through_every_entry_in_uid_order(client: FlaskClient) -> None:
    names = [f"u{i:02}" for i in range(25)]
    publish(client, "p", *(conn(u, data_type=f"T{i % 3}") for i, u in enumerate(names)))
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        r = client.get(f"{URL}?limit=10" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [e["uid"] for e in r["connections"]]
        pages += 1
        if r["next_cursor"] is None:
            break
        cursor = r["next_cursor"]
        assert cursor == seen[-1]
    assert seen == names
    assert pages == 3


def test_a_page_that_ends_exactly_at_the_last_entry_has_no_next_cursor(
    client: FlaskClient,
) -> None:
    publish(client, "p", conn("a"), conn("b"))
    r = client.get(f"{URL}?limit=2").json
    assert [e["uid"] for e in r["connections"]] == ["a", "b"]
    assert r["next_cursor"] is None


def test_the_default_limit_is_100(client: FlaskClient) -> None:
    publish(client, "p", *(conn(f"u{i:03}") for i in range(150)))
    r = client.get(URL).json
    assert len(r["connections"]) == 100
    assert r["next_cursor"] == "u099"


@pytest.mark.parametrize(
    "pattern",
    [".*", "app0.*", "app0[0-9]", "app01", "app.+x", "(app|db)1.*", "", "app0\\d*", ".*1"],
)
def test_uid_regex_matches_the_same_uids_as_a_lookup(client: FlaskClient, pattern: str) -> None:
    names = ["app01", "app02", "app1x", "appx", "db1", "db12", "app0\nx", "zz"]
    publish(client, "p", *(conn(u) for u in names))
    looked_up = client.post("/getconnection/p", json={"uid_regex": pattern, "data_type": "TPSet"})
    expected = [e["uid"] for e in looked_up.json]
    assert uids(client, f"uid_regex={pattern}".replace("+", "%2B")) == expected


def test_data_type_keeps_only_entries_of_that_type(client: FlaskClient) -> None:
    publish(client, "p", conn("a", data_type="A"), conn("b", data_type="B"), conn("c"))
    assert uids(client, "data_type=B") == ["b"]
    assert uids(client, "data_type=none") == []


def test_filters_page_with_the_cursor_too(client: FlaskClient) -> None:
    publish(client, "p", *(conn(f"u{i:02}", data_type="AB"[i % 2]) for i in range(20)))
    first = client.get(f"{URL}?data_type=B&uid_regex=u.[13579]&limit=3").json
    assert [e["uid"] for e in first["connections"]] == ["u01", "u03", "u05"]
    assert first["next_cursor"] == "u05"
    rest = uids(client, "data_type=B&uid_regex=u.[13579]&cursor=u05")
    assert rest == [f"u{i:02}" for i in range(7, 20, 2)]


def test_a_filter_matching_nothing_in_a_big_partition_stops_and_gives_a_cursor(
    client: FlaskClient,
) -> None:
    total = SCAN_BUDGET + 2_000
    for start in range(0, total, 10_000):
        end = min(start + 10_000, total)
        publish(client, "p", *(conn(f"u{i:06}") for i in range(start, end)))
    r = client.get(f"{URL}?uid_regex=.*none").json
    assert r["connections"] == []
    assert r["next_cursor"] is not None
    following = client.get(f"{URL}?uid_regex=.*none&cursor={r['next_cursor']}").json
    assert following == {**following, "connections": [], "next_cursor": None}


def test_an_unknown_partition_is_404_with_the_index_header(client: FlaskClient) -> None:
    r = client.get("/api/v1/partitions/nope/connections")
    assert r.status_code == 404
    assert r.json == {"error": "partition 'nope' not found"}
    assert int(r.headers["X-Registry-Index"]) > 0


def test_the_index_header_grows_with_a_change(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    before = int(client.get(URL).headers["X-Registry-Index"])
    publish(client, "p", conn("b"))
    assert int(client.get(URL).headers["X-Registry-Index"]) > before


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("uid_regex=(", "not a valid regular expression"),
        ("uid_regex=(?=a)", "lookaround"),
        ("limit=0", "from 1 to"),
        (f"limit={MAX_LIMIT + 1}", "from 1 to"),
        ("limit=ten", "integer"),
        ("cursor=" + "x" * 1025, "MAX_UID_LENGTH"),
        ("data_type=" + "x" * 257, "MAX_DATA_TYPE_LENGTH"),
        ("uid_regex=" + "x" * 4097, "MAX_REGEX_LENGTH"),
        ("index=-1", "non-negative integer"),
        ("index=1e3", "non-negative integer"),
        ("index=" + "9" * 19, "non-negative integer"),
        ("index=1&wait=soon", "duration"),
        ("index=1&wait=-1s", "duration"),
        ("index=1&wait=1h", "duration"),
        ("wait=1s", "needs 'index'"),
        ("limit=1&limit=2", "given 2 times"),
        ("page=2", "unknown query parameter 'page'"),
    ],
)
def test_a_bad_query_is_400_saying_what_is_wrong(
    client: FlaskClient, query: str, words: str
) -> None:
    publish(client, "p", conn("a"))
    r = client.get(f"{URL}?{query}")
    assert r.status_code == 400
    assert words in r.json["error"]


def test_partitions_takes_no_query_parameters(client: FlaskClient) -> None:
    r = client.get("/api/v1/partitions?limit=1")
    assert r.status_code == 400
    assert "unknown query parameter 'limit'" in r.json["error"]


def test_a_partition_name_longer_than_the_limit_is_400(client: FlaskClient) -> None:
    r = client.get(f"/api/v1/partitions/{'p' * 257}/connections")
    assert r.status_code == 400
    assert "MAX_PARTITION_LENGTH" in r.json["error"]


@pytest.mark.parametrize("path", ["/api/v1/partitions", URL])
def test_the_read_token_guards_the_api(path: str) -> None:
    client = create_app(Settings(read_token="r3ad")).test_client()
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer r3ad"}).status_code in (200, 404)


def test_requests_are_counted_under_their_own_endpoint_labels(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    client.get("/api/v1/partitions")
    client.get(URL)
    client.get(f"{URL}?index=0&wait=0")
    text = client.get("/metrics").get_data(as_text=True)
    for endpoint in ("api_partitions", "api_connections", "api_watch"):
        line = f'connection_flask_requests_total{{endpoint="{endpoint}",method="GET",status="200"}}'
        assert f"{line} 1.0" in text, endpoint
