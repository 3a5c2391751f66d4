"""Logs go through Python logging, at levels driven by CONNECTION_FLASK_DEBUG."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from connection_flask import logs
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


# Under Gunicorn the service's lines go through the handlers of its error log (logs.py).

GUNICORN_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


@pytest.fixture
def gunicorn_error_log() -> Iterator[logging.StreamHandler[io.StringIO]]:
    """A handler on "gunicorn.error" as Gunicorn sets one up; the service logger restored after."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter(GUNICORN_FORMAT, "[%Y-%m-%d %H:%M:%S %z]"))
    gunicorn_log, service_log = logging.getLogger("gunicorn.error"), logs.log
    saved = service_log.handlers, service_log.propagate, service_log.level
    gunicorn_log.addHandler(handler)
    yield handler
    gunicorn_log.removeHandler(handler)
    service_log.handlers, service_log.propagate, service_log.level = saved


def test_under_gunicorn_the_service_logs_through_its_error_log_handlers(
    gunicorn_error_log: logging.StreamHandler[io.StringIO],
) -> None:
    logs.configure(Settings(debug_level=1))
    assert logs.log.handlers == [gunicorn_error_log]
    assert not logs.log.propagate and logs.log.level == logging.INFO


def test_a_request_line_is_in_the_error_log_as_soon_as_it_is_logged(
    gunicorn_error_log: logging.StreamHandler[io.StringIO],
) -> None:
    client = create_app(Settings(debug_level=1)).test_client()
    client.post("/publish", json=BODY)
    text = gunicorn_error_log.stream.getvalue()
    assert re.search(
        r"^\[.*\] \[\d+\] \[INFO\] publish partition=p connections=1 took \d+ us$", text, re.M
    )


def test_an_app_built_twice_writes_each_line_once(
    gunicorn_error_log: logging.StreamHandler[io.StringIO],
) -> None:
    create_app(Settings(debug_level=1))
    client = create_app(Settings(debug_level=1)).test_client()
    client.post("/publish", json=BODY)
    assert gunicorn_error_log.stream.getvalue().count("publish partition=p") == 1
