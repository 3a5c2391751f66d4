"""Fixtures shared by every test: the Flask tutorial's ``app`` and ``client``, plus a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connection_flask.app import create_app
from connection_flask.settings import Settings
from tests.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> Iterator[Flask]:
    yield create_app(settings, clock=clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
