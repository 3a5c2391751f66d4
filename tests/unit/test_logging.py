"""Logs go through Python logging, at levels driven by CONNECTION_FLASK_DEBUG."""

from __future__ import annotations

import logging

import pytest

from connection_flask.app import create_app
from connection_flask.settings import Settings
from tests.helpers import conn

BODY = {"partition": "p", "connections": [conn("uid-1")]}


def run(debug: int, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    client = create_app(Settings(debug_level=debug)).test_client()
    caplog.clear()
    client.post("/publish", json=BODY)
    client.post("/getconnection/p", json={"uid_regex": "uid-.*", "data_type": "TPSet"})
    return [r for r in caplog.records if r.name == "connection_flask"]


def shown(records: list[logging.LogRecord]) -> str:
    return "\n".join(r.getMessage() for r in records)


def test_level_0_logs_no_timing(caplog: pytest.LogCaptureFixture) -> None:
    assert "took" not in shown(run(0, caplog))


def test_level_1_logs_publish_and_lookup_timing(caplog: pytest.LogCaptureFixture) -> None:
    text = shown(run(1, caplog))
    assert "publish partition=p connections=1 took" in text
    assert "lookup partition=p uid_regex=uid-.* found=1 took" in text
    assert "tcp://" not in text


def test_level_2_adds_what_was_published(caplog: pytest.LogCaptureFixture) -> None:
    text = shown(run(2, caplog))
    assert "uid-1=tcp://" in text and "body=" not in text


def test_level_3_adds_the_request_json(caplog: pytest.LogCaptureFixture) -> None:
    text = shown(run(3, caplog))
    assert "POST /publish body=b'{" in text and '"partition": "p"' in text
