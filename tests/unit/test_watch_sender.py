"""Watches answered by the gevent worker's Sender (worker.py), with real Gunicorn requests parsed
from a socket pair: an answer goes to the watches waiting from an earlier index only, a watch
whose answer another started sends nothing more, and TLS or a connection that closes leave the
answer to Gunicorn's writer. tests/integration/test_watch_wire.py has the same under Gunicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import gevent.socket
import pytest
from flask import Flask, Response
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from gunicorn.http.wsgi import Response as GunicornResponse
from gunicorn.workers.base_async import ALREADY_HANDLED

from connection_flask.environ_keys import SEND_KEY
from connection_flask.watches import answer_started
from connection_flask.worker import Sender, _Answering, sendable
from tests.unit.test_watch import publish, watches

QUERY = ("p", ".*", None, 100, None)
Connection = tuple[Sender, gevent.socket.socket]


@pytest.fixture
def connection() -> Iterator[Connection]:
    """A Sender for ``GET /`` read by Gunicorn's parser, and the client's end of its socket."""
    yield from sender_for(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def sender_for(
    request: bytes, cfg: Config | None = None
) -> Iterator[tuple[Sender, gevent.socket.socket]]:
    server, client = gevent.socket.socketpair()
    client.sendall(request)
    cfg = cfg or Config()
    req = next(RequestParser(cfg, server, ("127.0.0.1", 1)))
    yield Sender(GunicornResponse(req, server, cfg)), client
    server.close()
    client.close()


def received(client: gevent.socket.socket) -> bytes:
    client.settimeout(5)
    return client.recv(65536)


def waiting_from(app: Flask, sender: Sender, index: int) -> threading.Thread:
    """A watch from ``index`` on partition p, waiting in a thread of its own with ``sender``."""

    def run() -> None:
        with app.test_request_context(environ_overrides={SEND_KEY: sender}):
            watches(app).wait("p", index, 5.0, QUERY)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while watches(app).active < 1:
        assert time.monotonic() < deadline, "the watch never waited"
        time.sleep(0.01)
    return thread


def answer_at(app: Flask, index: int) -> None:
    """Answer the query at ``index`` as another watch would (one without a Sender)."""
    with app.test_request_context():
        watches(app).answer(QUERY, index, lambda: Response(b"{}", mimetype="application/json"))


def test_an_answer_starts_only_the_watches_waiting_from_an_earlier_index(
    app: Flask, connection: Connection
) -> None:
    sender, client = connection
    publish(app.test_client(), "a")
    now = app.extensions["connection_flask"].registry.index("p")
    thread = waiting_from(app, sender, now)
    answer_at(app, now - 1)  # late news: this watch has seen that change
    assert sender.rest is None
    answer_at(app, now + 1)
    assert sender.rest == b""
    assert received(client).startswith(b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: ")
    app.extensions["connection_flask"].registry.wake_waiters()
    app.extensions["connection_flask"].draining.set()
    thread.join(5)


def test_a_watch_whose_answer_another_started_only_finishes_it(
    app: Flask, connection: Connection
) -> None:
    sender, client = connection
    with app.test_request_context(environ_overrides={SEND_KEY: sender}):
        assert answer_started() is None  # nobody started it: the watch answers itself
        sender.start("404 NOT FOUND", b"Content-Length: 2\r\n\r\n{}")
        response = answer_started()
    assert response is not None and response.status_code == 404  # the status it sent
    assert received(client).endswith(b"\r\n\r\n{}")
    client.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.recv(1)  # and nothing more


@pytest.mark.parametrize(
    ("request_line", "usable"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ],
)
def test_a_sender_writes_only_a_get_whose_connection_stays_open(
    request_line: bytes, usable: bool
) -> None:
    for sender, _ in sender_for(request_line):
        assert sendable(sender.resp) is usable


def test_a_sender_leaves_tls_to_gunicorns_writer() -> None:
    cfg = Config()
    cfg.set("certfile", "/etc/ssl/certs/server.pem")
    for sender, _ in sender_for(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", cfg):
        assert not sendable(sender.resp)


def test_an_app_answering_again_after_its_answer_was_started_sends_nothing_more(
    connection: Connection,
) -> None:
    # As when a woken watch fails (its store gone) after another watch started its answer.
    given, client = connection

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[SEND_KEY].start("200 OK", b"Content-Length: 2\r\n\r\n{}")
        start_response("503 SERVICE UNAVAILABLE", [("Content-Length", "5")])
        return [b"later"]

    assert _Answering(app, offer_send=True)({}, given.resp.start_response) is ALREADY_HANDLED
    assert received(client).endswith(b"\r\n\r\n{}")
    client.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.recv(1)
