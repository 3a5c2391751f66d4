"""The Redis store's own concerns: its settings, one clock and one round trip, its keys, and
its faults (Redis down at start, back, restarted empty, silent) answered 503 and never 500,
each against a real redis-server the test stops and starts."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from connection_flask.app import create_app
from connection_flask.matching import compile_matcher
from connection_flask.settings import Settings, SettingsError
from connection_flask.store import Connection, RedisStore, StoreUnavailable
from connection_flask.store.redis_calls import Background
from connection_flask.store.redis_scripts import describe
from connection_flask.wsgi import MultipleWorkersError, refuse_multiple_workers
from tests.conftest import close_store
from tests.helpers import README_LOOKUP, README_LOOKUP_ANSWER, README_PUBLISH
from tests.redis_server import RedisServer

TIMEOUT = 0.2
# A DAQ client (drunc) gives each request 0.5 s: a 503 must come well within it.
CLIENT_TIMEOUT = 0.5


@pytest.fixture
def served(own_redis: RedisServer) -> Iterator[FlaskClient]:
    """A client of an app on the real clock whose Redis (own_redis) is not started yet."""
    app = create_app(Settings(store=own_redis.url, store_timeout=TIMEOUT, debug_level=0))
    yield app.test_client()
    close_store(app)


@pytest.fixture
def replica(redis_server: RedisServer) -> Iterator[Callable[..., RedisStore]]:
    """replica(ttl, grace, **options) -> a RedisStore on the session's Redis, emptied first, as
    each worker or replica of a deployment has its own; all are closed after the test."""
    redis_server.flush()
    made: list[RedisStore] = []

    def new(ttl: float = 10.0, grace: float = 60.0, **options: Any) -> RedisStore:
        made.append(RedisStore(redis_server.url, ttl, grace, **options))
        return made[-1]

    yield new
    for store in made:
        store.close()


def timed_post(client: FlaskClient, path: str, body: object) -> tuple[int, bytes, float]:
    start = time.perf_counter()
    r = client.post(path, json=body)
    return r.status_code, r.data, time.perf_counter() - start


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("redis", "got 'redis'"),
        ("http://cache:6379", "got a http:// URL"),
        ("Memory", "got 'Memory'"),
    ],
)
def test_a_store_that_is_neither_memory_nor_a_redis_url_is_refused(value: str, said: str) -> None:
    with pytest.raises(SettingsError, match=f"CONNECTION_FLASK_STORE must be memory .*{said}"):
        Settings.from_env({"CONNECTION_FLASK_STORE": value})


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://:pw@h:6380", "unix:///r.sock"])
def test_redis_urls_of_each_scheme_are_accepted(url: str) -> None:
    assert Settings.from_env({"CONNECTION_FLASK_STORE": url}).store == url


def test_a_zero_store_timeout_is_refused() -> None:
    with pytest.raises(SettingsError, match="CONNECTION_FLASK_STORE_TIMEOUT must be > 0"):
        Settings.from_env({"CONNECTION_FLASK_STORE_TIMEOUT": "0"})


def test_the_redis_password_shows_neither_in_settings_nor_in_errors() -> None:
    url = "redis://user:s3cret@127.0.0.1:1/0"
    assert "s3cret" not in repr(Settings(store=url))
    assert describe(url) == "redis://127.0.0.1:1/0"


def test_more_than_one_worker_is_allowed_with_redis_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    monkeypatch.setattr(sys, "argv", [gunicorn, "--workers=3", "connection_flask.wsgi:app"])
    refuse_multiple_workers(Settings(store="redis://127.0.0.1:1/0"))
    with pytest.raises(MultipleWorkersError, match="with 3 Gunicorn workers"):
        refuse_multiple_workers(Settings())


# ----------------------------------------------------------------------------- Redis itself


def test_entries_are_stamped_by_the_redis_clock_that_every_replica_shares(
    replica: Callable[..., RedisStore],
) -> None:
    one, other = replica(0.5, prefix="t"), replica(0.5, prefix="t")
    one.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    server_now = float("{}.{:06d}".format(*one.client().time()))
    stamp = one.client().zscore("t:{p}:t", "a")
    assert abs(stamp - server_now) < 1.0
    assert other.lookup("p", compile_matcher("a"), "T") != []
    time.sleep(0.6)
    assert other.lookup("p", compile_matcher("a"), "T") == []


def test_the_background_sweeper_removes_what_expired_by_the_redis_clock(
    replica: Callable[..., RedisStore],
) -> None:
    store = replica(0.1, 0.1, sweep_interval=0.05, background_sweep=True)
    store.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    assert store.sweeping
    deadline = time.monotonic() + 5
    while store.counts() != (0, 0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.counts() == (0, 0, 0)
    store.close()
    assert not store.sweeping


def test_a_wait_on_one_replica_wakes_on_a_change_made_through_another(
    replica: Callable[..., RedisStore],
) -> None:
    waiting, changing = replica(prefix="w"), replica(prefix="w")
    changing.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    n = waiting.index("p")
    assert not waiting.wait_change("p", n, 0.3)  # nothing changed: the wait runs out
    change = [Connection("b", "tcp://h:1", "T", 0)]
    threading.Timer(0.2, changing.publish, ("p", change)).start()
    start = time.monotonic()
    assert waiting.wait_change("p", n, 10.0) == waiting.index("p") > n
    assert time.monotonic() - start < 5


def test_a_woken_wait_reads_no_index_from_redis_the_change_message_carries_it(
    replica: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting, changing = replica(prefix="w"), replica(prefix="w")
    changing.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    n = waiting.index("p")
    reads: list[str] = []
    read = waiting.index

    def counted(partition: str | None = None) -> int:
        reads.append(str(partition))
        return read(partition)

    monkeypatch.setattr(waiting, "index", counted)
    threading.Timer(0.2, changing.publish, ("p", [Connection("b", "tcp://h:1", "T", 0)])).start()
    assert waiting.wait_change("p", n, 10.0) == changing.index("p") > n
    assert reads == ["p", "p"]  # before and once registered; none once woken


def test_a_change_message_it_cannot_read_wakes_every_wait_and_the_listener_goes_on(
    replica: Callable[..., RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    waiting, changing = replica(prefix="w"), replica(prefix="w")
    changing.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    n = waiting.index("p")
    threading.Timer(0.1, changing.client().publish, ("w:changes", "ibad p")).start()
    threading.Timer(0.3, changing.publish, ("p", [Connection("b", "tcp://h:1", "T", 0)])).start()
    assert waiting.wait_change("p", n, 10.0) == changing.index("p") > n
    assert "subscribing again" not in caplog.text


def test_too_many_watches_is_still_a_429_with_redis_down(own_redis: RedisServer) -> None:
    app = create_app(Settings(store=own_redis.url, store_timeout=TIMEOUT, worker_class="sync"))
    try:
        r = app.test_client().get("/api/v1/partitions/p/connections?index=1")
        assert r.status_code == 429 and "X-Registry-Index" not in r.headers
    finally:
        close_store(app)


def test_a_lookup_is_one_round_trip(
    replica: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = replica()
    store.publish("p", [Connection(f"app{i}-x", "tcp://h:1", "T", 0) for i in range(50)])
    store.client().script_flush()
    store.lookup("p", compile_matcher("a"), "T")  # loads the script again (NOSCRIPT)
    sent: list[object] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self: object, command: object, check_health: bool = True) -> None:
        sent.append(command)
        send(self, command, check_health)  # type: ignore[arg-type]

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    for pattern in ("app1-x", "app1.*", "app[12]-x"):
        assert store.lookup("p", compile_matcher(pattern), "T")
    assert len(sent) == 3


def test_every_key_is_under_the_prefix_and_prefixes_do_not_meet(
    replica: Callable[..., RedisStore],
) -> None:
    mine, theirs = replica(prefix="mine"), replica(prefix="theirs")
    mine.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    mine.retract("p", ["a"])
    mine.publish("p", [Connection("a", "tcp://h:1", "T", 0)])
    mine.record_call("publish", 0.1)
    mine.stats()
    mine.sweep_once()
    assert theirs.lookup("p", compile_matcher("a"), "T") is None
    keys = mine.client().keys("*")
    assert keys and all(k.startswith(b"mine:") for k in keys), keys


# ----------------------------------------------------------------------------- faults


def test_redis_down_at_start_is_a_fast_503_and_the_process_stays_alive(
    served: FlaskClient, own_redis: RedisServer
) -> None:
    assert served.get("/healthz").status_code == 200
    ready = served.get("/readyz")
    assert ready.status_code == 503
    assert ready.text.startswith(f"store unavailable: {own_redis.url}: ")
    for path, body in (("/publish", README_PUBLISH), ("/getconnection/ccTest", README_LOOKUP)):
        status, data, took = timed_post(served, path, body)
        assert status == 503
        assert data.startswith(b'{"error":"store unavailable: redis://127.0.0.1:')
        assert took < CLIENT_TIMEOUT


def test_the_server_recovers_by_itself_once_redis_is_up(
    served: FlaskClient, own_redis: RedisServer
) -> None:
    assert served.post("/publish", json=README_PUBLISH).status_code == 503
    own_redis.start()
    assert served.get("/readyz").status_code == 200
    assert served.post("/publish", json=README_PUBLISH).status_code == 200
    assert served.post("/getconnection/ccTest", json=README_LOOKUP).data == README_LOOKUP_ANSWER


def test_a_redis_restarted_empty_is_refilled_by_the_next_republish(
    served: FlaskClient, own_redis: RedisServer
) -> None:
    own_redis.start()
    assert served.post("/publish", json=README_PUBLISH).status_code == 200
    own_redis.stop()
    assert timed_post(served, "/getconnection/ccTest", README_LOOKUP)[0] == 503
    own_redis.start()
    assert served.post("/getconnection/ccTest", json=README_LOOKUP).status_code == 404
    assert served.post("/publish", json=README_PUBLISH).status_code == 200
    assert served.post("/getconnection/ccTest", json=README_LOOKUP).data == README_LOOKUP_ANSWER


def test_a_redis_that_accepts_but_never_answers_is_a_503_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connections; nobody ever reads or writes
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        app: Flask = create_app(Settings(store=url, store_timeout=TIMEOUT, debug_level=0))
        try:
            status, data, took = timed_post(app.test_client(), "/getconnection/p", README_LOOKUP)
        finally:
            close_store(app)
    assert status == 503 and b"Timeout" in data
    assert TIMEOUT <= took < CLIENT_TIMEOUT


def test_the_sweeper_outlives_an_outage_and_says_so_once_each_way(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(own_redis.url, 10.0, 60.0, timeout=TIMEOUT, sweep_interval=0.01)
    background = Background(store)
    try:
        with caplog.at_level(logging.WARNING, logger="connection_flask"):
            assert [background.sweep_once() for _ in range(3)] == [0, 0, 0]
            own_redis.start()
            for _ in range(3):
                background.sweep_once()
                time.sleep(0.02)  # past the sweep lease
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 2, said
        assert said[0].startswith(f"sweeper: store unavailable: {own_redis.url}: ")
        assert said[1] == f"sweeper: {own_redis.url} answers again"
        with pytest.raises(StoreUnavailable):
            own_redis.stop()
            store.sweep_once()
    finally:
        store.close()
