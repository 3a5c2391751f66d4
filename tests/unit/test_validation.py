"""The exact error each malformed body gets, word for word as the service has always answered
(clients and scripts match on these), and which of several errors a body gets first."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from connection_flask.app import create_app
from tests.helpers import FakeClock
from tests.unit.test_hardening_limits import SMALL


def c(uid: str = "u", **fields: Any) -> dict[str, Any]:
    return {"uid": uid, "uri": "tcp://a:1", "data_type": "T", "connection_type": 0, **fields}


@pytest.fixture
def small() -> FlaskClient:
    return create_app(SMALL, clock=FakeClock()).test_client()


def refused(client: FlaskClient, path: str, body: Any) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    r = client.post(path, data=data, content_type="application/json")
    return r.status_code, r.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "request body is empty; expected a JSON object"),
        (b"[1]", "request body must be a JSON object, not an array"),
        ({"connections": []}, "missing required key 'partition'"),
        ({"partition": None, "connections": []}, "'partition' must be a string, not null"),
        ({"partition": "", "connections": []}, "'partition' must not be empty"),
        (
            {"partition": "longer", "connections": []},
            "'partition' is 6 characters, longer than CONNECTION_FLASK_MAX_PARTITION_LENGTH (5)",
        ),
        (
            {"partition": "a/b", "connections": []},
            "'partition' must not contain '/' (it could not be looked up at "
            "/getconnection/<partition>): 'a/b'",
        ),
        ({"partition": "p"}, "missing required key 'connections'"),
        ({"partition": "p", "connections": {}}, "'connections' must be an array, not an object"),
        (
            {"partition": "p", "connections": [c()] * 4},
            "4 connections in one request, more than "
            "CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH (3)",
        ),
        (
            {"partition": "p", "connections": [c(), "x"]},
            "connections[1] must be an object, not a string",
        ),
        (
            {"partition": "p", "connections": [c(uri=True)]},
            "'connections[0].uri' must be a string, not a boolean",
        ),
        (
            {"partition": "p", "connections": [c("u" * 9)]},
            "'connections[0].uid' is 9 characters, longer than CONNECTION_FLASK_MAX_UID_LENGTH (8)",
        ),
        (
            {"partition": "p", "connections": [{"uid": "u", "uri": "x", "connection_type": 0}]},
            "missing required key 'connections[0].data_type'",
        ),
        (
            {"partition": "p", "connections": [c(connection_type=1.5)]},
            "'connections[0].connection_type' must be an integer, not a number",
        ),
        (
            {"partition": "p", "connections": [c(capacity=2**63)]},
            "'connections[0].capacity' is out of the 64-bit integer range",
        ),
    ],
)
def test_publish_refusals_are_worded_as_ever(small: FlaskClient, body: Any, error: str) -> None:
    assert refused(small, "/publish", body) == (400, error)


def test_invalid_json_is_worded_by_the_json_parser(small: FlaskClient) -> None:
    status, error = refused(small, "/publish", b'{"partition": 1e999}')
    assert status == 400
    assert error.startswith("request body is not valid JSON: number is infinity")


def test_a_key_the_contract_does_not_name_is_ignored(small: FlaskClient) -> None:
    body = {"partition": "p", "connections": [c(note="x")], "client": "v2"}
    assert small.post("/publish", json=body).status_code == 200


def test_a_value_json_forbids_under_an_unnamed_key_is_still_invalid_json(
    small: FlaskClient,
) -> None:
    status, error = refused(small, "/publish", b'{"partition":"p","connections":[],"x":"\xff"}')
    assert status == 400 and error.startswith("request body is not valid JSON")


def test_the_first_error_in_the_contracts_order_is_the_one_answered(small: FlaskClient) -> None:
    # Key order in the body does not matter: partition before connections, uid before uri.
    body = b'{"connections":[{"uri":5,"uid":"uuuuuuuuu"}],"partition":7}'
    assert refused(small, "/publish", body)[1] == "'partition' must be a string, not a number"
    body = b'{"partition":"p","connections":[{"uri":5,"uid":"uuuuuuuuu"}]}'
    assert "'connections[0].uid' is 9 characters" in refused(small, "/publish", body)[1]


def test_a_missing_key_is_answered_before_errors_in_the_keys_after_it(small: FlaskClient) -> None:
    body = {"connections": [{"uid": 5}]}
    assert refused(small, "/publish", body)[1] == "missing required key 'partition'"


def test_connections_without_uid_or_uri_count_toward_the_limit(small: FlaskClient) -> None:
    body = {"partition": "p", "connections": [{"uri": "x"}, {"uid": "y"}, c("a"), c("b")]}
    assert "4 connections in one request" in refused(small, "/publish", body)[1]


def test_a_connection_without_uid_is_skipped_whatever_else_it_holds(small: FlaskClient) -> None:
    body = {"partition": "p", "connections": [{"uri": "x", "data_type": 7}, c("a")]}
    assert small.post("/publish", json=body).status_code == 200
    found = small.post("/getconnection/p", json={"uid_regex": ".*", "data_type": "T"})
    assert [e["uid"] for e in found.get_json()] == ["a"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"data_type": "T"}, "missing required key 'uid_regex'"),
        ({"uid_regex": "a"}, "missing required key 'data_type'"),
        (
            {"uid_regex": "a" * 11, "data_type": "T"},
            "uid_regex is 11 characters, longer than CONNECTION_FLASK_MAX_REGEX_LENGTH (10)",
        ),
        # The pattern's length is checked after both keys.
        ({"uid_regex": "a" * 11, "data_type": 5}, "'data_type' must be a string, not a number"),
    ],
)
def test_lookup_refusals_are_worded_as_ever(small: FlaskClient, body: Any, error: str) -> None:
    assert refused(small, "/getconnection/p", body) == (400, error)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"partition": "p", "connections": [{}]},
            "missing required key 'connections[0].connection_id'",
        ),
        (
            {"partition": "p", "connections": [{"connection_id": "u" * 9}]},
            "'connections[0].connection_id' is 9 characters, longer than "
            "CONNECTION_FLASK_MAX_UID_LENGTH (8)",
        ),
        (
            {"partition": "p", "connections": [{"connection_id": "u", "data_type": 1}]},
            "connections[0].data_type must be a string, not a number",
        ),
    ],
)
def test_retract_refusals_are_worded_as_ever(small: FlaskClient, body: Any, error: str) -> None:
    assert refused(small, "/retract", body) == (400, error)


def test_retract_partition_by_form_is_checked_as_json_is(small: FlaskClient) -> None:
    r = small.post("/retract-partition", data={"partition": "a/b"})
    assert r.status_code == 400
    assert r.get_json()["error"].startswith("'partition' must not contain '/'")
