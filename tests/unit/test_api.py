"""Every DAQ endpoint through Flask's test client, as the contract (docs/API.md) states it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import (
    README_LOOKUP,
    README_LOOKUP_ANSWER,
    README_PUBLISH,
    FakeClock,
    conn,
)


def publish(client: FlaskClient, partition: str, *conns: dict[str, Any]) -> None:
    r = client.post("/publish", json={"partition": partition, "connections": list(conns)})
    assert (r.status_code, r.data) == (200, b"OK")


def lookup(client: FlaskClient, partition: str, regex: str, data_type: str = "TPSet") -> Any:
    return client.post(
        f"/getconnection/{partition}", json={"uid_regex": regex, "data_type": data_type}
    )


def test_readme_example_publish_then_lookup(client: FlaskClient) -> None:
    r = client.post(
        "/publish",
        data=json.dumps(README_PUBLISH, indent=1),
        headers={"content-type": "application/json"},
    )
    assert (r.status_code, r.data) == (200, b"OK")
    r = lookup(client, "ccTest", README_LOOKUP["uid_regex"], README_LOOKUP["data_type"])
    assert r.status_code == 200
    assert r.data == README_LOOKUP_ANSWER


def test_publish_accepts_compact_json_in_any_key_order_without_content_type(
    client: FlaskClient,
) -> None:
    body = '{"connections":[{"uri":"tcp://a:1","connection_type":1,"uid":"x","data_type":"T"}],"partition":"p"}'
    assert client.post("/publish", data=body).status_code == 200
    assert lookup(client, "p", "x", "T").get_json() == [
        {"uid": "x", "uri": "tcp://a:1", "connection_type": 1, "data_type": "T", "capacity": 0}
    ]


def test_publish_keeps_capacity_from_newer_clients(client: FlaskClient) -> None:
    publish(client, "p", conn("a", capacity=42))
    assert lookup(client, "p", "a").get_json()[0]["capacity"] == 42


def test_connections_without_uid_or_uri_are_skipped_and_the_rest_stored(
    client: FlaskClient,
) -> None:
    no_uid = {"uri": "tcp://a:1", "data_type": "TPSet", "connection_type": 0}
    no_uri = {"uid": "b", "data_type": "TPSet", "connection_type": 0}
    publish(client, "p", no_uid, no_uri, conn("c"))
    assert [e["uid"] for e in lookup(client, "p", ".*").get_json()] == ["c"]


def test_lookup_is_a_full_match(client: FlaskClient) -> None:
    publish(client, "p", conn("DRO-000"))
    assert lookup(client, "p", "DRO").get_json() == []
    assert len(lookup(client, "p", "DRO.*").get_json()) == 1


def test_lookup_filters_on_exact_data_type(client: FlaskClient) -> None:
    publish(client, "p", conn("a", data_type="TPSet"), conn("b", data_type="TPSetX"))
    assert [e["uid"] for e in lookup(client, "p", ".*", "TPSet").get_json()] == ["a"]


def test_lookup_results_are_sorted_by_uid(client: FlaskClient) -> None:
    publish(client, "p", *(conn(u) for u in ["z", "m", "a", "q"]))
    assert [e["uid"] for e in lookup(client, "p", ".*").get_json()] == ["a", "m", "q", "z"]


def test_lookup_of_unknown_partition_is_404(client: FlaskClient) -> None:
    r = lookup(client, "nope", ".*")
    assert r.status_code == 404 and "nope" in r.get_json()["error"]


def test_lookup_in_known_partition_with_no_match_is_empty_list(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    r = lookup(client, "p", "b")
    assert (r.status_code, r.data) == (200, b"[]")


def test_lookup_by_get_with_a_body(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    r = client.get("/getconnection/p", json={"uid_regex": "a", "data_type": "TPSet"})
    assert r.status_code == 200 and len(r.get_json()) == 1


@pytest.mark.parametrize("missing", ["uid_regex", "data_type"])
def test_lookup_without_regex_or_data_type_is_400(client: FlaskClient, missing: str) -> None:
    publish(client, "p", conn("a"))
    body = {"uid_regex": "a", "data_type": "TPSet"}
    del body[missing]
    r = client.post("/getconnection/p", json=body)
    assert r.status_code == 400 and missing in r.get_json()["error"]


def test_expired_entries_are_invisible_and_revived_by_republish(
    client: FlaskClient, clock: FakeClock
) -> None:
    publish(client, "p", conn("a"))
    clock.advance(10)
    r = lookup(client, "p", "a")
    assert (r.status_code, r.data) == (200, b"[]")
    publish(client, "p", conn("a"))
    assert len(lookup(client, "p", "a").get_json()) == 1


def test_output_is_valid_json_whatever_a_uid_holds(client: FlaskClient) -> None:
    nasty = 'q"uote\\back\nslash</script>\u2603\x01'
    publish(client, "p", conn(nasty, uri='tcp://"h":1'))
    r = lookup(client, "p", ".*\n.*|q.*")
    assert r.get_json()[0]["uid"] == nasty
    assert r.get_json()[0]["uri"] == 'tcp://"h":1'


def test_retract_removes_listed_connections(client: FlaskClient) -> None:
    publish(client, "p", conn("a"), conn("b"))
    r = client.post(
        "/retract",
        json={"partition": "p", "connections": [{"connection_id": "a", "data_type": "TPSet"}]},
    )
    assert (r.status_code, r.data) == (200, b"OK")
    assert [e["uid"] for e in lookup(client, "p", ".*").get_json()] == ["b"]


def test_retract_without_data_type_works(client: FlaskClient) -> None:
    publish(client, "p", conn("a"), conn("b"))
    r = client.post("/retract", json={"partition": "p", "connections": [{"connection_id": "a"}]})
    assert r.status_code == 200


def test_retract_with_a_missing_uid_removes_the_others_and_answers_404(
    client: FlaskClient,
) -> None:
    publish(client, "p", conn("a"), conn("b"))
    r = client.post(
        "/retract",
        json={"partition": "p", "connections": [{"connection_id": "a"}, {"connection_id": "x"}]},
    )
    assert r.status_code == 404 and "x" in r.get_json()["error"]
    assert [e["uid"] for e in lookup(client, "p", ".*").get_json()] == ["b"]


def test_retract_of_unknown_partition_is_404(client: FlaskClient) -> None:
    r = client.post("/retract", json={"partition": "p", "connections": [{"connection_id": "a"}]})
    assert r.status_code == 404


@pytest.mark.parametrize("body", [b"", b'{"partition": "p"}'])
def test_retract_without_body_or_connections_is_400(client: FlaskClient, body: bytes) -> None:
    publish(client, "p", conn("a"))
    assert client.post("/retract", data=body).status_code == 400


def test_retracting_the_last_connection_removes_the_partition(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    client.post("/retract", json={"partition": "p", "connections": [{"connection_id": "a"}]})
    assert lookup(client, "p", ".*").status_code == 404


def test_retract_partition_by_form_field(client: FlaskClient) -> None:
    publish(client, "ccTest", conn("a"))
    r = client.post("/retract-partition", data={"partition": "ccTest"})
    assert (r.status_code, r.data) == (200, b"OK")
    assert lookup(client, "ccTest", ".*").status_code == 404


def test_retract_partition_by_json_body(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    assert client.post("/retract-partition", json={"partition": "p"}).status_code == 200
    assert client.post("/retract-partition", json={"partition": "p"}).status_code == 404


def test_retract_partition_by_urlencoded_body_without_content_type(client: FlaskClient) -> None:
    publish(client, "p", conn("a"))
    assert client.post("/retract-partition", data=b"partition=p").status_code == 200


@pytest.mark.parametrize("body", [b"", b"{}", b"other=1"])
def test_retract_partition_without_a_partition_is_400(client: FlaskClient, body: bytes) -> None:
    r = client.post("/retract-partition", data=body)
    assert r.status_code == 400 and "error" in r.get_json()


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/publish", b"{not json", "not valid JSON"),
        ("/publish", b"[1, 2]", "must be a JSON object"),
        ("/publish", b'{"connections": []}', "'partition'"),
        ("/publish", b'{"partition": "p"}', "'connections'"),
        ("/publish", b'{"partition": 5, "connections": []}', "must be a string"),
        ("/publish", b'{"partition": "p", "connections": {}}', "must be an array"),
        ("/publish", b'{"partition": "p", "connections": [7]}', "connections[0]"),
        (
            "/publish",
            b'{"partition":"p","connections":[{"uid":"a","uri":"u","connection_type":0}]}',
            "data_type",
        ),
        (
            "/publish",
            b'{"partition":"p","connections":[{"uid":"a","uri":"u","data_type":"T",'
            b'"connection_type":"0"}]}',
            "integer",
        ),
        (
            "/publish",
            b'{"partition":"p","connections":[{"uid":"a","uri":"u","data_type":"T",'
            b'"connection_type":true}]}',
            "integer",
        ),
        ("/getconnection/p", b'{"uid_regex": "(", "data_type": "T"}', "regular expression"),
        ("/getconnection/p", b'{"uid_regex": "(a)\\\\1", "data_type": "T"}', "RE2"),
        ("/getconnection/p", b'{"uid_regex": 1, "data_type": "T"}', "must be a string"),
        ("/retract", b'{"partition": "p", "connections": [{}]}', "connection_id"),
        ("/retract-partition", b"[]", "JSON object"),
    ],
)
def test_bad_input_gets_a_clear_400_json_error(
    client: FlaskClient, path: str, body: bytes, fragment: str
) -> None:
    r = client.post(path, data=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.mimetype == "application/json"
    assert fragment in r.get_json()["error"]


def test_oversized_body_is_413_naming_the_limit(client: FlaskClient) -> None:
    r = client.post("/publish", data=b"x" * (4 * 1024 * 1024 + 1))
    assert r.status_code == 413
    assert "CONNECTION_FLASK_MAX_BODY_BYTES" in r.get_json()["error"]


def test_unknown_route_and_wrong_method_are_json_4xx(client: FlaskClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.get_json()
    r = client.get("/publish")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]


def test_pathological_regex_is_answered_not_refused(client: FlaskClient) -> None:
    publish(client, "p", conn("a" * 40 + "b"))
    r = lookup(client, "p", "(a+)+$")
    assert (r.status_code, r.data) == (200, b"[]")
