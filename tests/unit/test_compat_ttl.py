"""Upstream's test suite sets the TTL by assigning ``entry_ttl`` on the old module, in a fixture:
that must still change the TTL the module's ``app`` uses. Real clock, as upstream's tests run."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType

import pytest
from flask.testing import FlaskClient

from tests.helpers import README_LOOKUP, README_PUBLISH

MODULES = ["connectivityserver.connectionflask", "connection-service.connection-flask"]


@pytest.fixture(params=MODULES)
def compat(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    module = importlib.import_module(request.param)
    before = module.entry_ttl
    yield module
    # Both paths serve connection_flask.wsgi's one app: leave it as the next test expects.
    module.entry_ttl = before
    module.app.test_client().get("/resetService")


@pytest.fixture
def client(compat: ModuleType) -> FlaskClient:
    compat.entry_ttl = timedelta(seconds=1)  # what upstream's `app` fixture does
    client: FlaskClient = compat.app.test_client()
    return client


def lookup(client: FlaskClient) -> list[str]:
    answer = client.post("/getconnection/ccTest", json=README_LOOKUP)
    assert answer.status_code == 200
    return [c["uid"] for c in answer.get_json()]


def test_assigned_entry_ttl_expires_entries_after_it(client: FlaskClient) -> None:
    assert client.post("/publish", json=README_PUBLISH).status_code == 200
    assert lookup(client) == ["DRO-000-tp_to_trigger", "DRO-001-tp_to_trigger"]
    assert b"strike" not in client.get("/").data
    time.sleep(1.1)
    assert lookup(client) == []
    assert b"strike" in client.get("/").data  # the dump strikes them out, as upstream checks


def test_assigned_entry_ttl_reads_back_on_both_module_paths(compat: ModuleType) -> None:
    compat.entry_ttl = timedelta(seconds=3)
    for name in MODULES:
        assert importlib.import_module(name).entry_ttl == timedelta(seconds=3)


def test_entry_ttl_of_zero_is_refused_and_changes_nothing(compat: ModuleType) -> None:
    before = compat.entry_ttl
    with pytest.raises(ValueError, match="ENTRY_TTL must be > 0"):
        compat.entry_ttl = timedelta(0)
    assert compat.entry_ttl == before
