"""A woken watch's answer on the wire, under the gevent worker: written at once by the worker
(worker.send) rather than by Gunicorn's writer, it must be the bytes Gunicorn would have sent,
keep the connection alive, and fall back to Gunicorn's writer whenever it cannot be sent so."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable

import httpx

from tests.integration.conftest import Server
from tests.integration.test_watch import URL, index, publish, serve, watching


class Connection:
    """One keep-alive connection that reads whole answers (Content-Length bodies)."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.buffer = b""

    def ask(self, target: str, method: str = "GET", *headers: str) -> None:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
        self.sock.sendall("\r\n".join(lines).encode())

    def answer(self, *, body: bool = True) -> tuple[str, list[tuple[str, str]], bytes]:
        """The status line, the headers in order, and the body."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        length = int(dict(headers)["Content-Length"]) if body else 0
        while len(self.buffer) < length:
            self._more()
        content, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, content

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def closed(self) -> bool:
        """Whether the server closed the connection (end of stream within 5 s)."""
        self.sock.settimeout(5)
        return self.sock.recv(1) == b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"connection closed; got {self.buffer!r}"
        self.buffer += data


def watch_from(server: Server, connection: Connection, *headers: str, method: str = "GET") -> int:
    """Ask for a watch from the current index and return once the server counts it waiting."""
    n = index(server)
    connection.ask(f"{URL}?index={n}&wait=30s", method, *headers)
    deadline = time.monotonic() + 10
    while watching(server) < 1:
        assert time.monotonic() < deadline, "the watch never waited"
        time.sleep(0.02)
    return n


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


def test_a_woken_watch_is_answered_as_gunicorn_answers_a_read(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server)
    publish(server, "a")
    with Connection(server) as connection:
        connection.ask(URL)
        read_status, read_headers, _ = connection.answer()
        n = watch_from(server, connection)
        publish(server, "a", "b")
        status, headers, body = connection.answer()
        assert (status, names(headers)) == (read_status, names(read_headers))
        assert dict(headers)["Connection"] == "keep-alive"
        answer = json.loads(body)
        assert [c["uid"] for c in answer["connections"]] == ["a", "b"]
        assert answer["index"] == int(dict(headers)["X-Registry-Index"]) > n
        connection.ask(URL)  # the same connection serves the next request
        assert connection.answer()[0] == "HTTP/1.1 200 OK"


def test_a_watch_that_asks_to_close_is_answered_and_then_closed(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server)
    publish(server, "a")
    with Connection(server) as connection:
        watch_from(server, connection, "Connection: close")
        publish(server, "b")
        status, headers, body = connection.answer()
        assert status == "HTTP/1.1 200 OK" and dict(headers)["Connection"] == "close"
        assert [c["uid"] for c in json.loads(body)["connections"]] == ["a", "b"]
        assert connection.closed()


def test_a_woken_head_watch_gets_the_headers_and_no_body(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server)
    publish(server, "a")
    with Connection(server) as connection:
        watch_from(server, connection, method="HEAD")
        publish(server, "b")
        status, headers, _ = connection.answer(body=False)
        assert status == "HTTP/1.1 200 OK" and int(dict(headers)["Content-Length"]) > 0
        connection.ask(URL)
        assert connection.answer()[0] == "HTTP/1.1 200 OK"  # no body bytes came before it


def test_a_watcher_gone_before_the_change_costs_nothing_but_its_socket(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server, CONNECTION_FLASK_DEBUG="1")
    publish(server, "a")
    with Connection(server) as connection:
        watch_from(server, connection)
        # Reset rather than closed, so that the answer's write fails at once.
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.sock.close()
        publish(server, "b")
        deadline = time.monotonic() + 10
        while watching(server) != 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert httpx.get(server.url + URL, timeout=10).status_code == 200
        log = server.output()
        assert "Traceback" not in log and "unexpected error" not in log


def test_a_watch_whose_wait_elapses_answers_none_of_those_still_waiting_from_its_index(
    start_server: Callable[..., Server],
) -> None:
    server = serve(start_server)
    publish(server, "a")
    n = index(server)
    with Connection(server) as short, Connection(server) as long:
        long.ask(f"{URL}?index={n}&wait=30s")
        short.ask(f"{URL}?index={n}&wait=300ms")
        _, headers, _ = short.answer()
        assert int(dict(headers)["X-Registry-Index"]) == n  # elapsed: the same index
        assert watching(server) == 1  # the long one still waits
        publish(server, "b")
        _, headers, body = long.answer()
        assert int(dict(headers)["X-Registry-Index"]) > n
        assert [c["uid"] for c in json.loads(body)["connections"]] == ["a", "b"]
