"""Watches (admin API requests with ``index=N``): how many may wait at once, how the answers
one change wakes go out (``Watches.answer``), and their end when the server drains.

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
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

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


class Sender(Protocol):
    """What the gevent worker offers each request (worker.Sender, environ_keys.SEND_KEY)."""

    rest: bytes | None  # None until started; then also ``status``

    def start(self, status: str, wire: bytes) -> None: ...

    def finish(self) -> object: ...

    @property
    def status(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A watch's answer, rendered once and sent to every watch that asks the same: a Flask
    response's status, headers and body, and its bytes after the server's own headers as a
    Sender writes them."""

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
        # The Senders of the watches waiting, by query, with the index each waits to pass.
        self._senders: dict[Hashable, dict[Sender, int]] = {}
        self._rendering: dict[Hashable, threading.Event] = {}  # answers being rendered, by key

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

    def wait(self, partition: str, index: int, seconds: float, query: Hashable) -> int | None:
        """Wait until ``partition``'s change index is no longer ``index``, ``seconds`` pass or
        the server drains; returns the index it moved to, or None if it did not. Raises
        TooManyWatches (429) if the most watches already wait. ``query`` is what the watch
        asks (the partition and the page's parameters): ``answer`` may start this watch's
        answer while it waits."""
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
        sender = _sender()
        if sender is not None:
            with self._lock:
                self._senders.setdefault(query, {})[sender] = index
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
                if sender is not None:
                    self._unlist(query, [sender])

    def answer(self, query: Hashable, index: int, render: Callable[[], Response]) -> Response:
        """This watch's response: ``query``'s page at ``index``, from ``render`` or shared.

        One change wakes every watch of its partition at once, and the last one answered
        waits for all those before it. So the page is rendered once for them all (it was 40%
        of each woken watch's CPU, 1,000 watches on 20 entries): an answer is shared with those
        asking the same at the same index for SHARE_SECONDS, the same content but for
        ``age_seconds``. Under the gevent worker, the first watch that has it also starts the
        answer of every other watch waiting on the same query from another index, which the
        change has woken too but which would each switch in, return from their wait and write
        their own in turn; each then only finishes its write and yields before Flask ends the
        request (1,000 watches: the last answered 220 -> ~20 ms after the change,
        bench/watch.py). Elsewhere (gthread, tests) it is an ordinary response."""
        answer = self._rendered((query, index), render)
        with self._lock:
            waiting = self._senders.get(query, {})
            # Indexes only grow: a watch from a later index has seen this answer's change.
            due = [sender for sender, since in waiting.items() if since < index]
            self._unlist(query, due)
        for other in due:
            other.start(answer.status, answer.wire)
        sender = _sender()
        if sender is None:
            return answer.response()
        if sender.rest is None:
            sender.start(answer.status, answer.wire)
        return answered(sender)

    def _rendered(self, key: Hashable, render: Callable[[], Response]) -> Answer:
        """The answer shared for ``key``, rendered by one watch while the others asking for it
        wait: rendering may yield (a Redis read, a long partition's pages), and then every
        woken watch would render it too."""
        with self._lock:
            hit = self._answers.get(key)
            if hit is not None and time.monotonic() - hit[0] < SHARE_SECONDS:
                return hit[1]
            rendering = self._rendering.get(key)
            if rendering is None:
                rendering = self._rendering[key] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            rendering.wait()
            with self._lock:
                hit = self._answers.get(key)
            # None if the one rendering it failed (the store went away): render it here.
            return hit[1] if hit is not None else Answer.of(render())
        try:
            answer = Answer.of(render())
            with self._lock:
                self._answers.pop(key, None)
                while len(self._answers) >= SHARED_ANSWERS:
                    del self._answers[next(iter(self._answers))]  # the oldest
                self._answers[key] = (time.monotonic(), answer)
            return answer
        finally:
            with self._lock:
                del self._rendering[key]
            rendering.set()

    def _unlist(self, query: Hashable, senders: list[Sender]) -> None:
        """Called with the lock held."""
        waiting = self._senders.get(query)
        if waiting is not None:
            for sender in senders:
                waiting.pop(sender, None)
            if not waiting:
                del self._senders[query]

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


def answer_started() -> Response | None:
    """This watch's response if another watch already started writing its answer (``answer``),
    which it then only finishes: nothing else may be sent or even read from the store first."""
    sender = _sender()
    return None if sender is None or sender.rest is None else answered(sender)


def answered(sender: Sender) -> Response:
    """Finish the answer ``sender`` started; Flask ends the request with the status it sent."""
    return _Sent(sender.status, sender.finish())


def _sender() -> Sender | None:
    """This request's Sender: offered only when it may write the answer itself."""
    sender: Sender | None = request.environ.get(SEND_KEY)
    return sender


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
