"""Logs go through Python logging, at levels driven by CONNECTION_FLASK_DEBUG."""

from __future__ import annotations

import io
import logging
import time
import weakref
from collections.abc import Callable, Iterator

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


# Under Gunicorn the service's lines are written to its error log in batches (logs.py).

GUNICORN_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


class CountingStream(io.StringIO):
    """A log stream that remembers how many writes made its text."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def target() -> logging.StreamHandler[CountingStream]:
    handler = logging.StreamHandler(CountingStream())
    handler.setFormatter(logging.Formatter(GUNICORN_FORMAT, "[%Y-%m-%d %H:%M:%S %z]"))
    return handler


@pytest.fixture
def batching(
    target: logging.StreamHandler[CountingStream],
) -> Iterator[Callable[[float], logging.Logger]]:
    """``batching(interval)``: a logger writing into ``target`` through a BatchingHandler."""
    made: list[tuple[logging.Logger, logs.BatchingHandler]] = []

    def make(interval: float) -> logging.Logger:
        logger = logging.getLogger(f"test_logging.batched{len(made)}")
        handler = logs.BatchingHandler(target, interval=interval)
        logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
        made.append((logger, handler))
        return logger

    yield make
    for logger, handler in made:
        handler.close()
        logger.handlers = []


@pytest.fixture
def batched(batching: Callable[[float], logging.Logger]) -> logging.Logger:
    """A batching logger that waits 30 s to gather lines."""
    return batching(30)


def written(target: logging.StreamHandler[CountingStream], within: float = 0.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not target.stream.getvalue():
        time.sleep(0.01)
    return target.stream.getvalue()


def test_batched_lines_are_those_the_target_would_write_in_one_write(
    batched: logging.Logger, target: logging.StreamHandler[CountingStream]
) -> None:
    records = [
        batched.makeRecord(batched.name, logging.INFO, "f", 1, "line %d", (i,), None)
        for i in range(50)
    ]
    for record in records:
        batched.handle(record)
    assert written(target) == ""
    batched.handlers[0].flush()
    assert written(target) == "".join(target.format(r) + "\n" for r in records)
    assert target.stream.writes == 1


def test_info_lines_reach_the_stream_within_the_interval(
    batching: Callable[[float], logging.Logger], target: logging.StreamHandler[CountingStream]
) -> None:
    logger = batching(1.0)
    logger.info("first")
    logger.info("second")
    assert written(target) == ""
    text = written(target, within=5)
    assert "[INFO] first\n" in text
    assert text.index("first") < text.index("second")


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    batched: logging.Logger, target: logging.StreamHandler[CountingStream]
) -> None:
    batched.info("before")
    batched.warning("trouble")
    text = written(target, within=5)  # the handler would otherwise wait 30 s
    assert text.index("[INFO] before") < text.index("[WARNING] trouble")


def test_logging_shutdown_at_exit_writes_what_is_pending(
    batched: logging.Logger, target: logging.StreamHandler[CountingStream]
) -> None:
    batched.info("last words")
    logging.shutdown([weakref.ref(batched.handlers[0])])
    assert "[INFO] last words\n" in written(target)


def test_under_gunicorn_the_service_logs_through_its_error_log_handlers(
    target: logging.StreamHandler[CountingStream],
) -> None:
    gunicorn_log, service_log = logging.getLogger("gunicorn.error"), logs.log
    saved = service_log.handlers, service_log.propagate, service_log.level
    gunicorn_log.addHandler(target)
    try:
        logs.configure(Settings(debug_level=1))
        (handler,) = service_log.handlers
        assert isinstance(handler, logs.BatchingHandler) and handler.target is target
        assert not service_log.propagate and service_log.level == logging.INFO
    finally:
        gunicorn_log.removeHandler(target)
        for handler in service_log.handlers:
            handler.close()
        service_log.handlers, service_log.propagate, service_log.level = saved


def test_the_targets_filters_still_decide_what_is_written(
    batched: logging.Logger, target: logging.StreamHandler[CountingStream]
) -> None:
    target.addFilter(lambda record: "secret" not in record.getMessage())
    batched.info("kept")
    batched.info("a secret")
    batched.handlers[0].flush()
    assert "kept" in written(target) and "secret" not in written(target)
