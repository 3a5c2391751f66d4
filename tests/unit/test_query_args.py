"""Query parameters are refused alike on the dump page and the admin API (query_args.py): an
unknown one, one given twice, one too long, checked in that order, each a 400 naming it."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from connection_flask.errors import Invalid
from connection_flask.query_args import single_values
from connection_flask.settings import Settings
from tests.unit.test_metrics import scrape, value

SMALL = Settings(max_uid_length=3)
REJECTED = "connection_flask_rejected_requests_total"

# endpoint -> (path, the unknown refusal's list of what it takes, a parameter it takes)
ENDPOINTS = {
    "dump": ("/", "GET / takes partition, uid, after, partitions_after", "uid"),
    "api": (
        "/api/v1/partitions/p/connections",
        "this takes uid_regex, data_type, limit, cursor, index, wait",
        "cursor",
    ),
}


def refusal(client: FlaskClient, path: str, query: str) -> str:
    r = client.get(f"{path}?{query}")
    assert r.status_code == 400
    message: str = r.get_json()["error"]
    return message


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unknown_parameter_is_400_listing_what_the_endpoint_takes(
    client: FlaskClient, endpoint: str
) -> None:
    path, takes, _ = ENDPOINTS[endpoint]
    assert refusal(client, path, "bogus=1") == f"unknown query parameter 'bogus': {takes}"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_parameter_given_twice_is_400_naming_it(client: FlaskClient, endpoint: str) -> None:
    path, _, name = ENDPOINTS[endpoint]
    assert refusal(client, path, f"{name}=a&{name}=b") == (
        f"query parameter {name!r} is given 2 times; give it once"
    )


DUMP, API = ENDPOINTS["dump"][0], ENDPOINTS["api"][0]
# Every parameter with a length limit, the setting that bounds it and its default (the ``client``
# fixture's settings are the defaults).


@pytest.mark.parametrize(
    ("path", "name", "setting", "limit"),
    [
        (DUMP, "partition", "CONNECTION_FLASK_MAX_PARTITION_LENGTH", 256),
        (DUMP, "partitions_after", "CONNECTION_FLASK_MAX_PARTITION_LENGTH", 256),
        (DUMP, "uid", "CONNECTION_FLASK_MAX_UID_LENGTH", 1024),
        (DUMP, "after", "CONNECTION_FLASK_MAX_UID_LENGTH", 1024),
        (API, "uid_regex", "CONNECTION_FLASK_MAX_REGEX_LENGTH", 4096),
        (API, "data_type", "CONNECTION_FLASK_MAX_DATA_TYPE_LENGTH", 256),
        (API, "cursor", "CONNECTION_FLASK_MAX_UID_LENGTH", 1024),
    ],
)
def test_a_parameter_too_long_is_400_counted_as_too_long(
    client: FlaskClient, path: str, name: str, setting: str, limit: int
) -> None:
    before = scrape(client)
    assert refusal(client, path, f"{name}={'x' * (limit + 1)}") == (
        f"query parameter {name!r} is longer than {setting} ({limit})"
    )
    after = scrape(client)
    for reason, grew in (("too_long", 1), ("invalid_request", 0)):
        assert (
            value(after, REJECTED, reason=reason) - value(before, REJECTED, reason=reason) == grew
        )


# ----------------------------------------------------------------------------- the order


def refused(args: list[tuple[str, str]], takes: tuple[str, ...] = ("a", "b")) -> Invalid:
    with pytest.raises(Invalid) as caught:
        single_values(MultiDict(args), takes, SMALL, {"a": "max_uid_length"}, endpoint="this")
    return caught.value


def test_an_unknown_parameter_is_named_before_a_repeated_one() -> None:
    assert "'zz'" in refused([("a", "1"), ("a", "2"), ("zz", "1")]).message


def test_a_repeated_parameter_is_named_before_a_too_long_one() -> None:
    got = refused([("a", "long"), ("b", "1"), ("b", "2")])
    assert "'b' is given 2 times" in got.message
    assert got.reason == "invalid_request"


def test_a_too_long_parameter_is_refused_as_too_long() -> None:
    got = refused([("a", "long")])
    assert got.message == "query parameter 'a' is longer than CONNECTION_FLASK_MAX_UID_LENGTH (3)"
    assert got.reason == "too_long"


def test_an_endpoint_taking_no_parameters_says_so() -> None:
    assert refused([("a", "1")], takes=()).message == (
        "unknown query parameter 'a': this takes none"
    )


def test_only_the_parameters_given_have_a_value() -> None:
    got = single_values(
        MultiDict([("b", "")]), ("a", "b"), SMALL, {"a": "max_uid_length"}, endpoint="x"
    )
    assert got == {"b": ""}
