"""Watches (admin API requests with ``index=N``): how many may wait at once, and their end when
the server drains.

A waiting watch costs what a request costs in the worker class that serves it (the wait itself
is the store's ``wait_change``, store/changes.py):

- gevent (the default): a parked greenlet and its socket, no thread. At most
  CONNECTION_FLASK_MAX_WATCHES wait at once.
- gthread: one of the worker's CONNECTION_FLASK_THREADS threads for as long as it waits. At
  most THREADS - 1 wait at once (and never more than MAX_WATCHES), so one thread is always left
  for publishes and lookups: with the old command lines' two threads, one watch.
- sync (or anything that serves one request at a time): none; a watch would stop every other
  request for its whole wait. Watches are refused with 429.

Not under gevent, the worker class is taken from CONNECTION_FLASK_WORKER_CLASS and the thread
count from CONNECTION_FLASK_THREADS: the old command lines start gthread with two threads, which
those defaults state too.

On SIGTERM the server drains (State.draining): a watch then answers at once with what it would
answer at the end of its wait, so a shutdown never waits for watches. A helper (a greenlet
under gevent) runs while any watch waits and wakes them all within DRAIN_POLL of the drain's
start; it polls rather than waits on the event because that event may have been made before
gevent patched threading (Gunicorn's --preload), and waiting on such an event would block the
whole worker.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request
from flask.sansio.app import App

from connection_flask.environ_keys import SEND_KEY
from connection_flask.errors import TooManyWatches
from connection_flask.state import EXTENSION, State

WATCHES = "connection_flask.watches"
DRAIN_POLL = 0.2  # seconds
# How long an answer rendered for one watch is sent to others asking the same at the same
# index, and how many such answers are kept.
SHARE_SECONDS = 0.1
SHARED_ANSWERS = 64


@dataclass(frozen=True, slots=True)
class Answer:
    """A watch's answer, rendered once and sent to every watch that asks the same (``shared``):
    a Flask response's status, headers and body, and its bytes after the server's own headers
    as the worker sends them (``send``)."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    wire: bytes

    @classmethod
    def of(cls, response: Response) -> Answer:
        headers = response.headers.to_wsgi_list()
        body = response.get_data()
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
        return cls(response.status, headers, body, lines.encode("latin-1") + b"\r\n" + body)

    def response(self) -> Response:
        return Response(self.body, self.status, self.headers)


class _Sent(Response):
    """The answer the worker already wrote to the socket: Flask ends the request as for any
    other (hooks, metrics), and the worker writes nothing more (``handled``)."""

    def __init__(self, status: str, handled: Any) -> None:
        super().__init__(status=status)
        self.handled = handled

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.handled


def under_gevent() -> bool:
    """Whether gevent has patched threading in this process (Gunicorn's gevent worker does)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class Watches:
    """The watches waiting in one app, and the helper that ends them when it drains."""

    def __init__(self, st: State) -> None:
        self.st = st
        self.active = 0
        self._lock = threading.Lock()
        self._helper = False  # whether the drain helper runs
        self._answers: dict[Hashable, tuple[float, Answer]] = {}

    @classmethod
    def install(cls, app: App) -> None:
        app.extensions[WATCHES] = cls(app.extensions[EXTENSION])

    @staticmethod
    def of_app() -> Watches:
        watches: Watches = current_app.extensions[WATCHES]
        return watches

    def limit(self) -> int:
        """The most watches that may wait at once here (module doc)."""
        settings = self.st.settings
        if under_gevent():
            return settings.max_watches
        if settings.worker_class == "sync":
            return 0
        return max(0, min(settings.max_watches, settings.threads - 1))

    def wait(self, partition: str, index: int, seconds: float) -> int | None:
        """Wait until ``partition``'s change index is no longer ``index``, ``seconds`` pass or
        the server drains; returns the index it moved to, or None if it did not. Raises
        TooManyWatches (429) if the most watches already wait."""
        st = self.st
        limit = self.limit()
        with self._lock:
            admitted = self.active < limit
            if admitted:
                self.active += 1
                st.metrics.watches.set(self.active)
                start_helper, self._helper = not self._helper, True
        if not admitted:
            raise _refusal(limit)
        try:
            if start_helper:
                threading.Thread(
                    target=self._end_on_drain, name="connection-flask-watch-drain", daemon=True
                ).start()
            if st.draining.is_set():
                return None
            return st.registry.wait_change(partition, index, seconds, st.draining.is_set)
        finally:
            with self._lock:
                self.active -= 1
                st.metrics.watches.set(self.active)

    def shared(self, key: Hashable) -> Answer | None:
        """The answer another watch rendered for ``key`` (the partition, its index and the
        query) less than SHARE_SECONDS ago, if any.

        One change wakes every watch of its partition at once, and rendering the page was
        about 40% of the CPU each woken watch took (1,000 watches on 20 entries). Their answer
        is the same but for ``age_seconds``, and an answer shared is at most SHARE_SECONDS
        older than one rendered anew: the content is the same, the index being."""
        hit = self._answers.get(key)
        if hit is None or time.monotonic() - hit[0] >= SHARE_SECONDS:
            return None
        return hit[1]

    def share(self, key: Hashable, answer: Answer) -> Answer:
        with self._lock:
            self._answers.pop(key, None)
            while len(self._answers) >= SHARED_ANSWERS:
                del self._answers[next(iter(self._answers))]  # the oldest
            self._answers[key] = (time.monotonic(), answer)
        return answer

    def _end_on_drain(self) -> None:
        """While watches wait: every DRAIN_POLL, if the server drains, wake them (they see the
        drain and answer). Ends when none waits; the next watch starts it again."""
        while True:
            time.sleep(DRAIN_POLL)
            if self.st.draining.is_set():
                self.st.registry.wake_waiters()
            with self._lock:
                if self.active == 0:
                    self._helper = False
                    return


def respond(answer: Answer) -> Response:
    """``answer`` as the response to this request. Under the gevent worker it is written to the
    socket at once and the greenlet yields before Flask ends the request: one change wakes
    every watch of its partition, and the last one to be answered waits for all those before
    it, so each costs only its write (1,000 watches: worker CPU to the last answer 170 -> ...
    ms, bench/watch.py). Elsewhere (gthread, tests) it is an ordinary response."""
    send = request.environ.get(SEND_KEY)
    handled = None if send is None else send(answer.status, answer.wire)
    return answer.response() if handled is None else _Sent(answer.status, handled)


def _refusal(limit: int) -> TooManyWatches:
    if limit:
        message = (
            f"{limit} watches already wait, the most this server allows "
            "(CONNECTION_FLASK_MAX_WATCHES); retry later"
        )
    else:
        message = (
            "this worker serves one request at a time, so a watch would hold up all others: "
            "watches need the gevent worker (or gthread with CONNECTION_FLASK_THREADS of 2 or more)"
        )
    return TooManyWatches(message)
