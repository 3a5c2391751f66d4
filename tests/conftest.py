"""Fixtures shared by every test: the Flask tutorial's ``app`` and ``client``, plus a fake clock.

``app`` runs on each store: every test that uses it runs once on the in-memory store and once on
a real Redis (tests/redis_server.py), since both must answer alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connection_flask.app import create_app
from connection_flask.settings import Settings
from connection_flask.store import RedisStore
from tests.helpers import FakeClock
from tests.redis_server import own_redis, redis_server

__all__ = ["own_redis", "redis_server"]  # fixtures every test module may use

STORES = ["memory", "redis"]


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
