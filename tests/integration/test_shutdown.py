"""Graceful shutdown under real Gunicorn, for every supported worker class: SIGTERM -> /readyz
503 while still serving, in-flight requests finish, and the process exits 0, with nothing
crashed in its log, within CONNECTION_FLASK_DRAIN_SECONDS + CONNECTION_FLASK_GRACEFUL_TIMEOUT.

A request is kept "in flight" by sending its headers and only part of its body over a raw socket:
the worker reading it waits for the rest, as it would for a slow client. No debug endpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import orjson
import pytest

from tests.integration.conftest import BIN, Server

pytestmark = pytest.mark.integration

WORKER_CLASSES = ("gevent", "gthread", "sync")
# What a crashed worker leaves in the log: gevent's error for blocking inside its event loop
# (a threading.Timer started from the SIGTERM handler), any traceback, a worker's non-zero exit.
CRASH_MARKERS = ("Traceback", "BlockingSwitchOutError", "exited with code")

PUBLISH = orjson.dumps(
    {
        "partition": "shutdown",
        "connections": [
            {"uid": "inflight", "uri": "tcp://10.0.0.1:1", "data_type": "T", "connection_type": 0}
        ],
    }
)


class _Gunicorn:
    """A started server plus the probes these tests need."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.proc = server.proc
        self.port = server.port

    def status(self, path: str, data: bytes | None = None, timeout: float = 1.0) -> int | str:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            return type(exc).__name__

    def start_slow_publish(self) -> socket.socket:
        """Headers and the first bytes of the body; the rest is for the caller to send."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        head = (
            b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(PUBLISH)
        )
        s.sendall(head + PUBLISH[:10])
        return s

    def output(self) -> str:
        return self.server.output()

    def crashes(self) -> list[str]:
        log = self.output()
        return [marker for marker in CRASH_MARKERS if marker in log]

    def clean_exit(self, sigterm: float, timeout: float) -> float:
        """Seconds from ``sigterm`` until the process exited, which it must do with 0 and no
        crash in its log."""
        self.proc.wait(timeout=timeout)
        took = time.monotonic() - sigterm
        assert self.proc.returncode == 0, self.output()
        assert not self.crashes(), self.output()
        return took


@pytest.fixture(params=WORKER_CLASSES)
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gunicorn(
    start_server: Callable[..., Server], worker_class: str
) -> Callable[[float, int], _Gunicorn]:
    def start(drain: float, grace: int) -> _Gunicorn:
        return _Gunicorn(
            start_server(
                [str(BIN / "connection-flask")],
                env={
                    "CONNECTION_FLASK_WORKER_CLASS": worker_class,
                    "CONNECTION_FLASK_DRAIN_SECONDS": str(drain),
                    "CONNECTION_FLASK_GRACEFUL_TIMEOUT": str(grace),
                    "CONNECTION_FLASK_THREADS": "4",
                    "CONNECTION_FLASK_ACCESS_LOG": "",
                },
            )
        )

    return start


def _read_status_line(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def test_sigterm_answers_readyz_503_and_keeps_serving_through_the_drain(
    gunicorn: Callable[[float, int], _Gunicorn], worker_class: str
) -> None:
    drain, grace = 0.8, 2
    server = gunicorn(drain, grace)
    sigterm = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert server.status("/readyz") == 503
    assert server.status("/ready") == 503
    # Still serving during the drain: liveness holds and new work is accepted.
    assert server.status("/healthz") == 200
    assert server.status("/publish", PUBLISH) == 200
    assert time.monotonic() - sigterm < drain, "checks above must run inside the drain"

    took = server.clean_exit(sigterm, timeout=drain + grace + 5)
    assert drain <= took < drain + grace, f"exit took {took:.1f}s"
    assert f"draining for {drain:.1f} s" in server.output()


def test_sigterm_lets_an_in_flight_request_finish_with_200(
    gunicorn: Callable[[float, int], _Gunicorn], worker_class: str
) -> None:
    # A sync worker serves one request at a time: the in-flight one is all it does here, so
    # this test probes nothing else while it is held (the test above probes the drain).
    drain, grace = 0.6, 3
    server = gunicorn(drain, grace)
    slow = server.start_slow_publish()
    time.sleep(0.3)  # the worker is now inside the request, reading the body

    sigterm = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(drain + 0.5)
    assert server.proc.poll() is None, "exited while a request was still in flight"
    slow.sendall(PUBLISH[10:])
    assert _read_status_line(slow) == b"HTTP/1.1 200 OK"
    slow.close()

    took = server.clean_exit(sigterm, timeout=drain + grace + 5)
    assert took < drain + grace, f"exit took {took:.1f}s"


def test_request_stuck_past_the_grace_does_not_hold_the_process(
    gunicorn: Callable[[float, int], _Gunicorn], worker_class: str
) -> None:
    drain, grace = 0.3, 1
    server = gunicorn(drain, grace)
    stuck = server.start_slow_publish()  # never finished
    time.sleep(0.3)

    sigterm = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=drain + grace + 10)
    took = time.monotonic() - sigterm
    stuck.close()
    assert took < drain + grace + 1.5, f"exit took {took:.1f}s"
    assert took >= drain + grace - 0.5, f"gave up on the in-flight request after {took:.1f}s"
    assert server.proc.returncode == 0, server.output()


def test_second_sigterm_does_not_cut_the_drain_short(
    gunicorn: Callable[[float, int], _Gunicorn], worker_class: str
) -> None:
    # kill(1) on a process group and Kubernetes both deliver SIGTERM to every process: the
    # worker gets one from the arbiter and one directly. The drain must still last its time.
    drain, grace = 0.8, 2
    server = gunicorn(drain, grace)
    sigterm = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    time.sleep(0.2)
    os.killpg(server.proc.pid, signal.SIGTERM)
    time.sleep(0.2)
    assert server.status("/readyz") == 503
    time.sleep(max(0.0, drain - 0.3 - (time.monotonic() - sigterm)))
    assert server.status("/readyz") == 503
    assert drain <= server.clean_exit(sigterm, timeout=drain + grace + 5) < drain + grace


@pytest.mark.parametrize("worker_class", ["gevent"])
def test_sigterm_with_many_open_sockets_drains_and_exits_0_under_gevent(
    gunicorn: Callable[[float, int], _Gunicorn], worker_class: str
) -> None:
    # The row: a gevent worker, SIGTERM after a load of sockets, died of
    # BlockingSwitchOutError with no drain. Half the sockets have been served and are kept
    # alive, half have sent nothing yet.
    drain, grace = 0.5, 1
    server = gunicorn(drain, grace)
    sockets: list[socket.socket] = []
    try:
        for n in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sockets.append(s)
            if n % 2:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert _read_status_line(s) == b"HTTP/1.1 200 OK"
        sigterm = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert server.status("/readyz") == 503
        took = server.clean_exit(sigterm, timeout=drain + grace + 10)
    finally:
        for s in sockets:
            s.close()
    assert f"draining for {drain:.1f} s" in server.output()
    assert took < drain + grace + 1.5, f"exit took {took:.1f}s"
