"""Hypothesis against every endpoint: whatever JSON (or bytes) arrives, the answer is never a 5xx,
every 4xx is a JSON {"error": "..."}, and lookups always answer valid JSON."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connection_flask.app import create_app
from connection_flask.settings import Settings
from tests.helpers import FakeClock

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Limits small enough that fuzzing reaches them too.
LIMITS = Settings(
    debug_level=0,
    max_body_bytes=20_000,
    max_connections_per_publish=20,
    max_uid_length=40,
    max_uri_length=60,
    max_data_type_length=20,
    max_partition_length=20,
    max_regex_length=60,
    max_partitions=8,
    max_entries_per_partition=30,
    max_entries=60,
)

text = st.text(max_size=30)  # any code point hypothesis likes, surrogates excluded by JSON
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=12,
)
small_text = st.one_of(st.sampled_from(["p", "q", "a.*", "T", "", ".*", "(a+)+$"]), text)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right kind of value most of the time, anything at all sometimes."""
    return st.one_of(value, value, json_values)


connection = st.fixed_dictionaries(
    {},
    optional={
        "uid": _maybe(small_text),
        "uri": _maybe(small_text),
        "data_type": _maybe(small_text),
        "connection_type": _maybe(st.integers(-(2**65), 2**65)),
        "capacity": _maybe(st.integers(-(2**65), 2**65)),
        "connection_id": _maybe(small_text),
    },
)
document = st.fixed_dictionaries(
    {},
    optional={
        "partition": _maybe(small_text),
        "connections": _maybe(st.lists(_maybe(connection), max_size=25)),
        "uid_regex": _maybe(small_text),
        "data_type": _maybe(small_text),
    },
)


def _dumps(value: Any) -> bytes:
    # The standard library writes integers of any size (orjson refuses past 64 bits).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


bodies = st.one_of(
    document.map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=200),
    document.map(lambda d: _dumps(d)[: len(_dumps(d)) // 2]),
)
paths = st.sampled_from(
    ["/publish", "/retract", "/retract-partition", "/getconnection/p", "/getconnection/q"]
)


@pytest.fixture(scope="module")
def fuzz_app() -> Flask:
    # One app for the module: state carried from example to example is part of the fuzzing.
    return create_app(LIMITS, clock=FakeClock())


def _check(response: Any, path: str) -> None:
    status = response.status_code
    assert status < 500, response.get_data()
    if status >= 400:
        assert response.mimetype == "application/json", response.get_data()
        error = response.get_json()["error"]
        assert isinstance(error, str)
        assert error
    elif path.startswith("/getconnection"):
        assert isinstance(orjson.loads(response.get_data()), list)


@FUZZ
@given(path=paths, body=bodies, method=st.sampled_from(["POST", "GET"]))
def test_any_body_on_any_endpoint_never_gets_a_5xx(
    fuzz_app: Flask, path: str, body: bytes, method: str
) -> None:
    if method == "GET" and not path.startswith("/getconnection"):
        method = "POST"
    client: FlaskClient = fuzz_app.test_client()
    response = client.open(path, method=method, data=body, content_type="application/json")
    _check(response, path)


@FUZZ
@given(doc=document, partition=small_text)
def test_publish_then_lookup_with_hostile_values_answers_valid_json(
    fuzz_app: Flask, doc: dict[str, Any], partition: str
) -> None:
    client = fuzz_app.test_client()
    _check(client.post("/publish", data=_dumps(doc), content_type="application/json"), "/")
    target = partition.replace("/", "_") or "p"
    response = client.post(
        f"/getconnection/{target}", data=_dumps(doc), content_type="application/json"
    )
    _check(response, "/getconnection")


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["partition", "other", ""]), st.one_of(text, st.just("")), max_size=3
    ),
    raw=st.binary(max_size=100),
)
def test_retract_partition_form_or_raw_body_never_gets_a_5xx(
    fuzz_app: Flask, fields: dict[str, str], raw: bytes
) -> None:
    client = fuzz_app.test_client()
    _check(client.post("/retract-partition", data=fields), "/retract-partition")
    _check(
        client.post(
            "/retract-partition", data=raw, content_type="application/x-www-form-urlencoded"
        ),
        "/retract-partition",
    )
    _check(client.post("/retract-partition", data=raw), "/retract-partition")


@FUZZ
@given(segment=st.text(min_size=1, max_size=40))
def test_any_partition_in_the_url_answers_json_and_every_page_still_renders(
    fuzz_app: Flask, segment: str
) -> None:
    client = fuzz_app.test_client()
    from urllib.parse import quote

    response = client.post(
        "/getconnection/" + quote(segment, safe=""),
        json={"uid_regex": ".*", "data_type": "T"},
    )
    assert response.status_code in (200, 404, 405, 308)
    if response.status_code in (200, 404):
        orjson.loads(response.get_data())
    for page in ("/", "/stats", "/metrics"):
        assert client.get(page).status_code == 200


def test_deep_nesting_and_huge_numbers_are_400_not_a_crash(fuzz_app: Flask) -> None:
    client = fuzz_app.test_client()
    for body in (
        b"[" * 100_00,
        b'{"partition":"p","connections":[{"uid":"u","uri":"x","data_type":"T",'
        b'"connection_type":1' + b"0" * 400 + b"}]}",
        b'{"partition":"p","connections":[{"uid":"u","uri":"x","data_type":"T",'
        b'"connection_type":' + str(2**64).encode() + b"}]}",
        b'{"partition":"\\ud800","connections":[]}',
        b'{"partition":"p","connections":[]}\x00',
    ):
        response = client.post("/publish", data=body, content_type="application/json")
        assert response.status_code == 400, body[:60]
        assert response.get_json()["error"]
