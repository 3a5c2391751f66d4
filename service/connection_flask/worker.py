"""The default Gunicorn worker: gevent, with a deadline on a new connection's request headers.

Gunicorn's gevent worker serves each connection in a greenlet, so a slow or idle socket costs a
few kilobytes rather than a thread. It bounds each wait for a request by the keep-alive timeout,
the first request included; this worker bounds the first request's headers by
CONNECTION_FLASK_HEADER_TIMEOUT instead, so a connection that has sent nothing, or trickles its
headers, is closed at that deadline, and an idle keep-alive connection at the keep-alive timeout.
It also yields after each response, so one busy keep-alive connection cannot starve the
others, and offers the application a way to write an answer at once (Sender, for watches).
The request body's deadline is the application's (connection_flask.body).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import time
from contextvars import ContextVar
from typing import Any

import gevent
from gunicorn.glogging import Logger as _GunicornLogger
from gunicorn.http.wsgi import Response
from gunicorn.util import http_date
from gunicorn.workers.base_async import ALREADY_HANDLED
from gunicorn.workers.ggevent import GeventWorker as _GunicornGeventWorker

from connection_flask.environ_keys import ENDPOINT_KEY, SEND_KEY
from connection_flask.settings import Settings

# Whether the connection served by this greenlet has had a request yet. Each greenlet runs in
# its own context, so this is per connection.
_SERVED: ContextVar[bool] = ContextVar("connection_flask_served", default=False)


class GeventWorker(_GunicornGeventWorker):  # type: ignore[misc]
    wsgi: Any  # the application, set by Gunicorn's load_wsgi

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = Settings.from_env().header_timeout

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # With watches logged, every answer goes through Gunicorn's writer, which logs it.
        self.wsgi = _Answering(self.wsgi, offer_send=not getattr(self.log, "log_watches", True))

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        _SERVED.set(False)
        super().handle(listener, client, addr)

    def timeout_ctx(self) -> gevent.Timeout:
        # Called around the read of each request's headers. On timeout the with-block ends
        # silently (gevent's documented exception=False, which its stubs do not admit), no
        # request is read, and Gunicorn closes the connection as for an expired keep-alive.
        seconds = self.cfg.keepalive if _SERVED.get() else self.header_timeout
        _SERVED.set(True)
        return gevent.Timeout(seconds, False)  # type: ignore[arg-type]

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            _cork(sock, 0)  # corked when the response started (_Answering)
            # A keep-alive client on loopback has its next request waiting by the time the
            # response is written, so this greenlet would read and serve it without ever
            # yielding, and the worker's other connections would wait: with 16 wrk
            # connections p99 was 414 ms at p50 0.3 ms. Yielding after each response gives
            # them their turn (p99 5.6 ms).
            gevent.sleep(0)


class _Answering:
    """The application as this worker calls it: the socket is corked when a response starts,
    and uncorked when it is done (handle_request), and a Sender is offered (SEND_KEY).

    Gunicorn writes a response's headers and its body with a send each: two TCP segments, so
    two wake-ups of the client and twice the kernel's per-segment work, which was most of the
    CPU a woken watch took. Corked, the kernel sends them as one segment when the response is
    done (or when a full segment is ready, for a long body). Corked only once it starts, a
    request answered by its Sender is sent by that one write."""

    def __init__(self, app: Any, *, offer_send: bool) -> None:
        self.__wrapped__ = app  # as functools.wraps names it: inspect.unwrap finds the app
        self.offer_send = offer_send

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # Gunicorn's start_response is a method of the request's Response; an HTTP/2 stream's
        # (a subclass) shares its socket with the connection's other streams: left alone.
        resp = getattr(start_response, "__self__", None)
        if resp is None or type(resp) is not Response:
            return self.__wrapped__(environ, start_response)
        sender = Sender(resp) if self.offer_send and sendable(resp) else None
        if sender is not None:
            environ[SEND_KEY] = sender

        def corked(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            _cork(resp.sock, 1)
            return start_response(status, headers, exc_info)

        answer = self.__wrapped__(environ, corked)
        if sender is None or sender.rest is None or answer is ALREADY_HANDLED:
            return answer
        # Another request started this one's answer, and the application answered again
        # (an error after it was woken): the client must get only the first.
        if hasattr(answer, "close"):
            answer.close()
        return sender.finish()


def sendable(resp: Response) -> bool:
    """Whether a Sender may write this request's answer: a GET on a plain HTTP/1 connection
    that stays open after it. Otherwise Gunicorn's writer answers, saying it closes (or, for
    HEAD, leaving out the body); TLS is left to it too, as a TLS socket's send may wait and
    ``start`` must not. Decided once, when the request reaches the application: Gunicorn has
    set all this reads by then (``must_close`` when the worker stops or reached max_requests)."""
    req = resp.req
    return not (resp.must_close or req.should_close() or req.method != "GET" or resp.cfg.is_ssl)


class Sender:
    """Writes one request's answer itself (environ_keys.SEND_KEY): Gunicorn's status line and
    its own headers as its writer makes them (Server, Date, Connection), then the answer's
    ``wire``, in one send. Gunicorn's writer costs about 35 us an answer (validating and
    formatting each header, then two sends), and the watches one change wakes are answered
    one after the other.

    ``start`` writes what the socket takes at once and never waits, so a request may start
    another's answer (watches.py); ``finish``, in the request's own greenlet, writes the rest,
    yields, and returns Gunicorn's sign that the application answered by itself, so the worker
    goes on to the next request on the connection."""

    __slots__ = ("resp", "rest", "status")

    def __init__(self, resp: Response) -> None:
        self.resp = resp
        self.rest: bytes | None = None  # what start left to write; None before start
        self.status = ""  # the status line's code and reason, once started

    def start(self, status: str, wire: bytes) -> None:
        self.status = status
        req = self.resp.req
        data = (
            f"HTTP/{req.version[0]}.{req.version[1]} {status}\r\nServer: {self.resp.version}"
            f"\r\nDate: {_date(int(time.time()))}\r\nConnection: keep-alive\r\n"
        ).encode("latin-1") + wire
        try:
            sent = self.resp.sock.send(data, 0, timeout=0.0)
        except BlockingIOError:  # a client that does not read: finish waits for it
            sent = 0
        except OSError:
            sent = len(data)
            self._gone()
        self.rest = data[sent:]

    def finish(self) -> object:
        try:
            if self.rest:
                self.resp.sock.sendall(self.rest)
        except OSError:
            self._gone()
        # Other answers ready to go are written before this request's end is run.
        gevent.sleep(0)
        handled: object = ALREADY_HANDLED
        return handled

    def _gone(self) -> None:
        # The client has gone: end the connection quietly, as Gunicorn's writer would.
        with contextlib.suppress(OSError):
            self.resp.sock.shutdown(socket.SHUT_RDWR)


@functools.lru_cache(maxsize=2)
def _date(second: int) -> str:
    """The Date header's value for a second: formatting it is a tenth of what ``send`` costs,
    and a thousand watches are answered within the same second."""
    return str(http_date(second))


def _cork(sock: Any, on: int) -> None:
    with contextlib.suppress(OSError):  # a socket the client closed, or not TCP
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, on)


class Logger(_GunicornLogger):  # type: ignore[misc]
    """Gunicorn's logger, without the access line of a watch that was answered (not refused)
    below CONNECTION_FLASK_DEBUG=2: one change answers every watch of its partition at once,
    up to CONNECTION_FLASK_MAX_WATCHES lines in a burst that say nothing the metrics do not,
    and writing them was a quarter of the worker's CPU per woken watch (1,000 watches:
    150 ms -> 110 ms, bench/watch.py). Every other request keeps its line."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.log_watches = Settings.from_env().debug_level >= 2

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        answered = (getattr(resp, "status_code", None) or 500) < 400
        if answered and not self.log_watches and environ.get(ENDPOINT_KEY) == "api_watch":
            return
        super().access(resp, req, environ, request_time)
