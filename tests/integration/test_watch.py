"""Watches under real Gunicorn workers on loopback: many waiting on one partition under gevent
cost no threads and all answer one publish, an identical republish wakes none, a wait that
elapses answers the same index, the bound holds, gthread leaves a thread free, and a SIGTERM
ends the waits at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import conn
from tests.integration.conftest import BIN, Server

pytestmark = pytest.mark.integration

WATCHERS = 200
URL = "/api/v1/partitions/w/connections"


def serve(start_server: Callable[..., Server], **env: str) -> Server:
    return start_server(
        [str(BIN / "connection-flask")],
        env={"CONNECTION_FLASK_ACCESS_LOG": "", "CONNECTION_FLASK_DEBUG": "0", **env},
    )


def publish(server: Server, *uids: str) -> None:
    body = {"partition": "w", "connections": [conn(u) for u in uids]}
    assert httpx.post(server.url + "/publish", json=body, timeout=10).status_code == 200


def index(server: Server) -> int:
    return int(httpx.get(server.url + URL, timeout=10).headers["X-Registry-Index"])


def watching(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    [line] = [ln for ln in text.splitlines() if ln.startswith("connection_flask_watches ")]
    return float(line.split()[1])


def worker_threads(server: Server) -> int:
    """Threads of the Gunicorn worker (the master's one child)."""
    master = server.proc.pid
    [child] = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return len(os.listdir(f"/proc/{child}/task"))


class Watchers:
    """``count`` watches from N, each on its own connection, run on an event loop in this
    thread; ``answers`` holds (status, index, uids, seconds since start) once they answered."""

    def __init__(self, server: Server, count: int, n: int, wait: str) -> None:
        self.url = f"{server.url}{URL}?index={n}&wait={wait}"
        self.count = count
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=count + 10), timeout=90)
        self.tasks = [self.loop.create_task(self._one()) for _ in range(count)]
        self.answers: list[tuple[int, int, list[str], float]] = []

    async def _one(self) -> tuple[int, int, list[str], float]:
        r = await self.client.get(self.url)
        body: Any = r.json()
        uids = [e["uid"] for e in body.get("connections", [])]
        return r.status_code, int(r.headers["X-Registry-Index"]), uids, time.monotonic()

    def until_waiting(self, server: Server) -> None:
        """Run until the server counts every one of them waiting."""
        deadline = time.monotonic() + 20
        while (waiting := watching(server)) != self.count:
            assert time.monotonic() < deadline, f"{waiting} watches wait, not {self.count}"
            self.run_for(0.05)

    def run_for(self, seconds: float) -> None:
        """Let the requests go out (and any answers come in) for a while."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def done(self) -> int:
        return sum(t.done() for t in self.tasks)

    def finish(self, timeout: float = 30) -> list[tuple[int, int, list[str], float]]:
        finished = asyncio.wait_for(asyncio.gather(*self.tasks), timeout)
        try:
            return self.loop.run_until_complete(finished)
        finally:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()


def test_gevent_watchers_hold_no_thread_and_all_answer_one_change_not_a_republish(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server, CONNECTION_FLASK_MAX_WATCHES=str(WATCHERS))
    publish(server, "a")
    n = index(server)
    watchers = Watchers(server, WATCHERS, n, "60s")
    watchers.until_waiting(server)
    assert worker_threads(server) < 10  # 200 waiting requests, and no thread for any of them
    over = httpx.get(f"{server.url}{URL}?index={n}&wait=60s", timeout=10)
    assert over.status_code == 429 and over.headers["Retry-After"] == "1"

    publish(server, "a")  # the keep-alive republish: no change
    watchers.run_for(0.5)
    assert watchers.done() == 0
    assert watching(server) == WATCHERS

    published = time.monotonic()
    publish(server, "a", "b")
    answers = watchers.finish()
    assert {(status, tuple(uids)) for status, _, uids, _ in answers} == {(200, ("a", "b"))}
    assert {i for _, i, _, _ in answers} == {index(server)}
    assert index(server) > n
    # Loose: the machine is shared; bench/watch.py measures this latency.
    assert max(t for *_, t in answers) - published < 10
    assert watching(server) == 0


def test_a_watch_whose_wait_elapses_answers_the_same_index(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server)
    publish(server, "a")
    n = index(server)
    started = time.monotonic()
    watchers = Watchers(server, 20, n, "500ms")
    answers = watchers.finish()
    assert {(status, i) for status, i, _, _ in answers} == {(200, n)}
    assert min(t for *_, t in answers) - started >= 0.45


def test_under_gthread_watches_leave_a_thread_for_publishes_and_lookups(
    start_server: Callable[..., Server],
) -> None:
    server = serve(
        start_server, CONNECTION_FLASK_WORKER_CLASS="gthread", CONNECTION_FLASK_THREADS="4"
    )
    publish(server, "a")
    n = index(server)
    watchers = Watchers(server, 3, n, "60s")
    watchers.until_waiting(server)
    assert httpx.get(f"{server.url}{URL}?index={n}", timeout=10).status_code == 429
    lookup = httpx.post(
        server.url + "/getconnection/w", json={"uid_regex": ".*", "data_type": "TPSet"}, timeout=5
    )
    assert lookup.status_code == 200
    publish(server, "b")
    assert {status for status, *_ in watchers.finish()} == {200}


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_sigterm_ends_waiting_watches_at_once_and_the_server_exits_0(
    start_server: Callable[..., Server], worker_class: str
) -> None:
    server = serve(
        start_server,
        CONNECTION_FLASK_WORKER_CLASS=worker_class,
        CONNECTION_FLASK_THREADS="8",
        CONNECTION_FLASK_DRAIN_SECONDS="3",
        CONNECTION_FLASK_GRACEFUL_TIMEOUT="5",
    )
    publish(server, "a")
    n = index(server)
    count = 50 if worker_class == "gevent" else 7
    watchers = Watchers(server, count, n, "60s")
    watchers.until_waiting(server)
    sigterm = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    answers = watchers.finish()
    assert {(status, i) for status, i, _, _ in answers} == {(200, n)}
    assert max(t for *_, t in answers) - sigterm < 2  # well inside the 3 s drain
    assert server.proc.wait(timeout=20) == 0


@pytest.mark.parametrize(("debug", "watch_logged"), [("1", False), ("2", True)])
def test_an_answered_watch_has_an_access_line_only_from_debug_2(
    start_server: Callable[..., Server], debug: str, watch_logged: bool
) -> None:
    # One change answers every watch at once: their lines are a burst with nothing the
    # metrics lack, and cost a quarter of the worker's time per woken watch.
    server = serve(start_server, CONNECTION_FLASK_ACCESS_LOG="-", CONNECTION_FLASK_DEBUG=debug)
    publish(server, "a")
    n = index(server)
    assert httpx.get(f"{server.url}{URL}?index={n}&wait=10ms", timeout=10).status_code == 200
    invalid = httpx.get(f"{server.url}{URL}?index={n}&wait=10ms&limit=0", timeout=10)
    assert invalid.status_code == 400  # a watch that is not answered keeps its line
    httpx.get(f"{server.url}{URL}?limit=7", timeout=10)  # a read: logged whatever the level
    deadline = time.monotonic() + 10
    while "limit=7" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.output()
    assert "limit=7" in log and "limit=0" in log
    assert (f"index={n}&wait=10ms HTTP" in log) is watch_logged
