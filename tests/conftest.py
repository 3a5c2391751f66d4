"""Fixtures shared by every test: the Flask tutorial's ``app`` and ``client``, plus a fake clock.

``app`` runs on each store: every test that uses it runs once on the in-memory store and once on
a real Redis (tests/redis_server.py), since both must answer alike. With
``CONNECTION_FLASK_TEST_STORE=redis`` every app and server the session starts keeps its registry
in Redis instead (tests that build a MemoryStore themselves still test it), for running the whole
suite on that backend.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connection_flask import app as app_module
from connection_flask.app import create_app
from connection_flask.settings import Settings
from connection_flask.store import RedisStore
from tests.helpers import FakeClock
from tests.redis_server import RedisServer, own_redis, redis_server

__all__ = ["own_redis", "redis_server"]  # fixtures every test module may use

STORES = ["memory", "redis"]
EVERYWHERE = os.environ.get("CONNECTION_FLASK_TEST_STORE", "memory")


# Tests skipped when the session runs on Redis, each with the reason.
NOT_ON_REDIS = {
    "test_an_app_keeps_its_entries_in_memory_by_default": "the default store is memory",
    "test_more_than_one_worker_is_refused_with_the_reason": "Redis allows several workers",
    "test_more_than_one_worker_from_gunicorn_cmd_args_is_refused_too": (
        "Redis allows several workers"
    ),
    "test_dump_of_100k_entries_in_one_partition_is_one_page_under_1_mb": (
        "it stores 100k entries in one publish, ten times what the API lets one publish carry: "
        "on Redis one script that size runs past CONNECTION_FLASK_STORE_TIMEOUT"
    ),
    "test_gevent_watchers_hold_no_thread_and_all_answer_one_change_not_a_republish": (
        "it counts the worker's threads: gevent resolves the address of each new Redis "
        "connection in its resolver's thread pool (up to 10 threads, whatever the number of "
        "requests)"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if EVERYWHERE != "redis":
        return
    for item in items:
        reason = NOT_ON_REDIS.get(item.originalname if isinstance(item, pytest.Function) else "")
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"CONNECTION_FLASK_TEST_STORE=redis: {reason}"))


@pytest.fixture(scope="session", autouse=EVERYWHERE == "redis")
def redis_everywhere(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> Iterator[RedisServer]:
    """Every app built and every server started keeps its registry in the session's Redis."""
    make_store = app_module.make_store

    def on_redis(settings: Any, **kwargs: Any) -> Any:
        if settings.store == "memory":
            settings = dataclasses.replace(settings, store=redis_server.url)
        return make_store(settings, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "make_store", on_redis)
        patch.setenv("CONNECTION_FLASK_STORE", redis_server.url)
        yield redis_server


@pytest.fixture(autouse=EVERYWHERE == "redis")
def empty_redis(request: pytest.FixtureRequest) -> None:
    """Each test starts on an empty Redis, as on a new in-memory store."""
    request.getfixturevalue("redis_everywhere").flush()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str:
    """CONNECTION_FLASK_STORE for each store: "memory", or the session's Redis, emptied."""
    if request.param == "memory":
        return "memory"
    server = request.getfixturevalue("redis_server")
    server.flush()
    return str(server.url)


@pytest.fixture
def app(settings: Settings, clock: FakeClock, store_url: str) -> Iterator[Flask]:
    app = create_app(dataclasses.replace(settings, store=store_url), clock=clock)
    yield app
    close_store(app)


def close_store(app: Flask) -> None:
    """Close a Redis store's connections (an open socket left to the garbage collector warns)."""
    store = app.extensions["connection_flask"].registry
    if isinstance(store, RedisStore):
        store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
