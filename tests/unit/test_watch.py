"""Watches through Flask's test client, each waiting request on a thread of its own (outside
Gunicorn a waiting request holds its thread, as under gthread): they wake on a change, not on
an identical republish, end when their wait elapses or the server drains, and past the most
allowed get a 429. tests/integration/test_watch.py runs them under real Gunicorn workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient

from connection_flask.app import create_app
from connection_flask.settings import Settings
from connection_flask.store import Connection, MemoryStore
from connection_flask.store.changes import Notifier
from connection_flask.watches import SHARE_SECONDS, SHARED_ANSWERS, WATCHES, Watches
from tests.helpers import FakeClock, conn

URL = "/api/v1/partitions/p/connections"


class Watch(threading.Thread):
    """One GET on a thread of its own; ``response`` once it answered."""

    def __init__(self, app: Flask, query: str) -> None:
        super().__init__(daemon=True)
        self.app, self.query = app, query
        self.response: Any = None
        self.took = 0.0

    def run(self) -> None:
        start = time.monotonic()
        self.response = self.app.test_client().get(f"{URL}?{self.query}")
        self.took = time.monotonic() - start


@pytest.fixture
def settings() -> Settings:
    return Settings(threads=8, max_watches=3)


@pytest.fixture
def watch_app(app: Flask) -> Iterator[Flask]:
    yield app
    # Nothing may be left waiting: wake everything so a failed test leaves no thread behind.
    app.extensions["connection_flask"].draining.set()
    app.extensions["connection_flask"].registry.wake_waiters()


def publish(client: FlaskClient, *uids: str, uri: str = "") -> None:
    body = {"partition": "p", "connections": [conn(u, uri or None) for u in uids]}
    assert client.post("/publish", json=body).status_code == 200


def index(client: FlaskClient) -> int:
    return int(client.get(URL).headers["X-Registry-Index"])


def watches(app: Flask) -> Watches:
    w: Watches = app.extensions[WATCHES]
    return w


def start(app: Flask, query: str, waiting: int = 1) -> Watch:
    """A watch started and seen waiting (``waiting`` watches in all)."""
    w = Watch(app, query)
    w.start()
    deadline = time.monotonic() + 5
    while watches(app).active < waiting:
        assert time.monotonic() < deadline, "the watch never started waiting"
        time.sleep(0.005)
    return w


def answered(w: Watch, timeout: float = 5.0) -> Any:
    w.join(timeout)
    assert not w.is_alive(), "the watch did not answer"
    return w.response


def watch_across(app: Flask, client: FlaskClient, wait: str, *uids: str) -> tuple[int, Watch]:
    """Publish "a", start a watch from that index, then publish ``uids``."""
    publish(client, "a")
    n = index(client)
    w = start(app, f"index={n}&wait={wait}")
    publish(client, *uids)
    answered(w)
    return n, w


def test_a_watch_answers_the_change_with_the_new_index(
    watch_app: Flask, client: FlaskClient
) -> None:
    n, w = watch_across(watch_app, client, "30s", "b")
    r = w.response
    assert r.status_code == 200
    assert int(r.headers["X-Registry-Index"]) == r.json["index"] > n
    assert [e["uid"] for e in r.json["connections"]] == ["a", "b"]
    assert w.took < 5


def test_an_identical_republish_does_not_wake_a_watch(
    watch_app: Flask, client: FlaskClient
) -> None:
    n, w = watch_across(watch_app, client, "1s", "a")
    assert w.took >= 0.9
    assert w.response.json["index"] == n


def test_a_watch_answers_the_same_index_when_its_wait_elapses(
    watch_app: Flask, client: FlaskClient
) -> None:
    publish(client, "a")
    n = index(client)
    start_time = time.monotonic()
    r = client.get(f"{URL}?index={n}&wait=300ms")
    assert 0.29 <= time.monotonic() - start_time < 3
    assert r.status_code == 200
    assert int(r.headers["X-Registry-Index"]) == n


def test_a_watch_on_an_index_already_passed_answers_at_once(client: FlaskClient) -> None:
    publish(client, "a")
    n = index(client)
    publish(client, "b")
    start_time = time.monotonic()
    r = client.get(f"{URL}?index={n}&wait=30s")
    assert time.monotonic() - start_time < 1
    assert r.json["index"] > n


def test_a_watch_on_an_index_this_process_never_gave_answers_at_once(
    client: FlaskClient,
) -> None:
    publish(client, "a")
    n = index(client)
    start_time = time.monotonic()
    r = client.get(f"{URL}?index={n + 1000}&wait=30s")
    assert time.monotonic() - start_time < 1
    assert r.json["index"] == n


def test_a_watch_on_an_unknown_partition_answers_when_it_is_published(
    watch_app: Flask, client: FlaskClient
) -> None:
    r = client.get(URL)
    assert r.status_code == 404
    w = start(watch_app, f"index={r.headers['X-Registry-Index']}&wait=30s")
    publish(client, "a")
    assert answered(w).status_code == 200


def test_the_wait_is_cut_to_the_settings_longest() -> None:
    short = create_app(Settings(watch_max_wait=0.2), clock=FakeClock())
    c = short.test_client()
    publish(c, "a")
    start_time = time.monotonic()
    c.get(f"{URL}?index={index(c)}&wait=2m")
    assert time.monotonic() - start_time < 1.5


def fill(app: Flask, client: FlaskClient) -> tuple[int, list[Watch]]:
    """As many watches waiting as the settings allow (3), from the index after publishing "a"."""
    publish(client, "a")
    n = index(client)
    return n, [start(app, f"index={n}&wait=30s", i) for i in (1, 2, 3)]


def test_a_watch_beyond_the_most_allowed_gets_429_with_retry_after(
    watch_app: Flask, client: FlaskClient
) -> None:
    n, waiting = fill(watch_app, client)
    r = client.get(f"{URL}?index={n}&wait=30s")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert "CONNECTION_FLASK_MAX_WATCHES" in r.json["error"]
    assert int(r.headers["X-Registry-Index"]) == n
    assert 'rejected_requests_total{reason="too_many_watches"} 1.0' in client.get("/metrics").text
    publish(client, "b")
    assert [answered(w).status_code for w in waiting] == [200, 200, 200]
    assert client.get(f"{URL}?index={n}&wait=30s").status_code == 200  # room again, and changed


def test_a_read_is_never_refused_for_the_watches_waiting(
    watch_app: Flask, client: FlaskClient
) -> None:
    _, waiting = fill(watch_app, client)
    assert client.get(URL).status_code == 200
    publish(client, "b")
    for w in waiting:
        answered(w)


def test_without_gevent_watches_leave_one_thread_for_other_requests() -> None:
    assert watches(create_app(Settings(threads=2))).limit() == 1
    assert watches(create_app(Settings(threads=1))).limit() == 0
    assert watches(create_app(Settings(threads=50, max_watches=7))).limit() == 7


def test_under_the_sync_worker_a_watch_is_refused_and_says_why() -> None:
    c = create_app(Settings(worker_class="sync"), clock=FakeClock()).test_client()
    publish(c, "a")
    r = c.get(f"{URL}?index=0")
    assert r.status_code == 429
    assert "gevent" in r.json["error"]
    assert c.get(URL).status_code == 200  # plain reads still work


def test_draining_ends_a_waiting_watch_promptly(watch_app: Flask, client: FlaskClient) -> None:
    publish(client, "a")
    n = index(client)
    w = start(watch_app, f"index={n}&wait=60s")
    watch_app.extensions["connection_flask"].draining.set()
    r = answered(w, timeout=3)
    assert r.status_code == 200 and r.json["index"] == n
    assert w.took < 2


def test_while_draining_a_watch_answers_at_once(app: Flask, client: FlaskClient) -> None:
    publish(client, "a")
    app.extensions["connection_flask"].draining.set()
    start_time = time.monotonic()
    assert client.get(f"{URL}?index={index(client)}&wait=60s").status_code == 200
    assert time.monotonic() - start_time < 1


def test_the_watches_gauge_counts_those_waiting(watch_app: Flask, client: FlaskClient) -> None:
    def gauge() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        [line] = [ln for ln in text.splitlines() if ln.startswith("connection_flask_watches ")]
        return float(line.split()[1])

    publish(client, "a")
    w = start(watch_app, f"index={index(client)}&wait=30s")
    assert gauge() == 1
    publish(client, "b")
    answered(w)
    assert gauge() == 0


# ----------------------------------------------------------------------------- the store's wait


def test_wait_change_wakes_on_a_change_from_another_thread() -> None:
    s = MemoryStore(10.0, 60.0)
    s.publish("p", [Connection("a", "tcp://x:1", "T", 0)])
    n = s.index("p")
    threading.Timer(0.1, s.publish, ("p", [Connection("b", "tcp://x:1", "T", 0)])).start()
    start_time = time.monotonic()
    assert s.wait_change("p", n, 10.0)
    assert time.monotonic() - start_time < 5


def test_a_woken_wait_takes_its_index_from_the_change_and_reads_none() -> None:
    notifier, reads = Notifier(), []

    def current(partition: str) -> int:
        reads.append(partition)
        return 5

    threading.Timer(0.1, notifier.notify, ("p", 9)).start()
    assert notifier.wait("p", current, 5, 10.0, stop=lambda: False) == 9
    assert reads == ["p", "p"]  # before and once registered; none once woken


def test_a_change_handing_over_an_index_not_past_the_waits_is_read_again() -> None:
    # A replica's late message about a change this wait has already seen.
    notifier, values = Notifier(), iter([5, 5, 7])
    threading.Timer(0.1, notifier.notify, ("p", 3)).start()
    assert notifier.wait("p", lambda _: next(values), 5, 10.0, stop=lambda: False) == 7


def test_many_waits_on_a_partition_all_wake_and_none_stays_registered() -> None:
    s = MemoryStore(10.0, 60.0)
    s.publish("p", [Connection("a", "tcp://x:1", "T", 0)])
    n = s.index("p")
    woken: list[int | None] = []
    threads = [
        threading.Thread(target=lambda: woken.append(s.wait_change("p", n, 10.0)))
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    s.publish("p", [Connection("b", "tcp://x:1", "T", 0)])
    for t in threads:
        t.join(5)
    assert woken == [s.index("p")] * 20
    assert s.wait_change("p", n, 0.01) == s.index("p")  # moved: at once, nothing registered
    assert s._parts.notifier.waiting() == 0


def test_wait_change_ends_after_wake_waiters_once_stop_holds() -> None:
    s = MemoryStore(10.0, 60.0)
    stop = threading.Event()

    def drain() -> None:
        stop.set()
        s.wake_waiters()

    threading.Timer(0.1, drain).start()
    start_time = time.monotonic()
    assert not s.wait_change("p", s.index("p"), 10.0, stop.is_set)
    assert time.monotonic() - start_time < 5


def test_wake_waiters_alone_does_not_end_a_wait_whose_stop_does_not_hold() -> None:
    s = MemoryStore(10.0, 60.0)
    threading.Timer(0.05, s.wake_waiters).start()
    start_time = time.monotonic()
    assert not s.wait_change("p", s.index("p"), 0.5)
    assert time.monotonic() - start_time >= 0.45


# ----------------------------------------------------------------------------- shared answers


class Renders:
    """A render function for Watches.answer that counts its calls: its nth answer is "rN"."""

    def __init__(self, app: Flask, seconds: float = 0.0) -> None:
        self.app, self.seconds, self.count = app, seconds, 0

    def __call__(self) -> Response:
        self.count += 1
        body = f"r{self.count}"
        time.sleep(self.seconds)
        return Response(body)

    def answer(self, index: int) -> bytes:
        with self.app.test_request_context():
            return watches(self.app).answer("q", index, self).get_data()


def test_an_answer_is_shared_for_the_same_query_and_index_within_share_seconds(
    app: Flask,
) -> None:
    renders = Renders(app)
    assert [renders.answer(7), renders.answer(7), renders.answer(8)] == [b"r1", b"r1", b"r2"]
    time.sleep(SHARE_SECONDS + 0.01)
    assert renders.answer(7) == b"r3"


def test_shared_answers_are_bounded_dropping_the_oldest(app: Flask) -> None:
    renders = Renders(app)
    for i in range(SHARED_ANSWERS + 1):
        renders.answer(i)
    assert renders.answer(SHARED_ANSWERS) == f"r{SHARED_ANSWERS + 1}".encode()  # still kept
    assert renders.answer(0) == f"r{SHARED_ANSWERS + 2}".encode()  # dropped: rendered anew


def test_watches_asking_the_same_at_once_wait_for_one_render(app: Flask) -> None:
    renders = Renders(app, seconds=0.2)
    bodies: list[bytes] = []
    threads = [threading.Thread(target=lambda: bodies.append(renders.answer(7))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert bodies == [b"r1"] * 5
    assert renders.count == 1
