"""The cache of validated publish bodies: a keep-alive republish of the same bytes is not
parsed again, and nothing about what a publish means changes because of it."""

from __future__ import annotations

import orjson
import pytest

from connection_flask import validation
from connection_flask.settings import Settings
from connection_flask.validation import Invalid, _PublishCache
from tests.helpers import conn


def _body(*uids: str, partition: str = "p") -> bytes:
    return orjson.dumps({"partition": partition, "connections": [conn(u) for u in uids]})


def test_a_republished_body_is_answered_from_the_cache() -> None:
    settings = Settings()
    body = _body("app1-a", "app1-b")
    first = validation.publish(body, settings)
    again = validation.publish(bytes(bytearray(body)), settings)  # equal bytes, another object
    assert again is first
    assert [c.uid for c in again.connections] == ["app1-a", "app1-b"]


def test_the_same_body_under_other_settings_is_checked_against_those_settings() -> None:
    body = _body("a-rather-long-uid")
    validation.publish(body, Settings())
    with pytest.raises(Invalid, match="CONNECTION_FLASK_MAX_UID_LENGTH"):
        validation.publish(body, Settings(max_uid_length=5))


def test_a_body_that_failed_validation_fails_every_time() -> None:
    settings = Settings(max_uid_length=5)
    body = _body("a-rather-long-uid")
    for _ in range(2):
        with pytest.raises(Invalid, match="CONNECTION_FLASK_MAX_UID_LENGTH"):
            validation.publish(body, settings)
    assert validation.publish_cache.get(body, settings) is None


def test_the_cache_drops_its_oldest_bodies_to_stay_within_its_byte_budget() -> None:
    settings = Settings()
    bodies = [_body(f"app{i}-conn") for i in range(10)]
    cache = _PublishCache(capacity=3 * len(bodies[0]))
    for body in bodies:
        cache.put(body, settings, validation._publish(body, settings))
    assert len(cache) == 3
    assert cache.held <= cache.capacity
    assert cache.get(bodies[0], settings) is None
    assert cache.get(bodies[-1], settings) is not None


def test_a_body_larger_than_the_cache_allows_is_not_kept() -> None:
    settings = Settings()
    uids = [f"app-{i:05d}" for i in range(validation.PUBLISH_CACHE_MAX_BODY // 40)]
    body = _body(*uids)
    assert len(body) > validation.PUBLISH_CACHE_MAX_BODY
    cache = _PublishCache(capacity=validation.PUBLISH_CACHE_BYTES)
    cache.put(body, settings, validation._publish(body, settings))
    assert len(cache) == 0
    assert len(validation.publish(body, settings).connections) == len(uids)
