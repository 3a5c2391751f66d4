"""Change indexes, and waiting for one to grow: what watches (blocking queries) are built on.

Every store keeps one change index per partition (the ``X-Registry-Index`` of the admin API) and
one for the whole store. The rules, which any store keeps (see ``Store.index``):

- indexes are integers that only grow: every change takes the next value of one store-wide
  counter, and the partition it changed gets that value;
- a change is a change of content: a connection added, replaced by different fields, retracted
  or removed, an entry seen expired by the sweeper or published again after it expired, a
  partition created or removed. A republish of identical connections (the keep-alive every
  DAQ application sends every 2 s) only refreshes times and changes nothing;
- a partition that is not held has the counter's value at the last removal of a partition (or
  reset), so a partition's index never goes back when it is removed and published again;
- the counter starts at the wall clock in microseconds, so a restarted process starts above
  every index the one before it gave (unless the clock went back): a watch carrying an index
  from before the restart is not held up by an unrelated equal value.

``Notifier`` wakes the requests waiting for a partition to change. A store calls ``notify``
after each change (a shared store does it when its pub/sub message arrives, so that waits work
across replicas), and ``Notifier.wait`` is its ``wait_change``.

Each wait waits on an Event of its own, made when it starts. ``threading.Event`` is looked up
at that moment: under Gunicorn's gevent worker, which monkey-patches threading, that is gevent's
Event and a waiting request is a parked greenlet that holds no thread; under gthread it is a real
Event and the request holds one of the worker's threads until it is answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


def first_index() -> int:
    """Where a store's counter starts (module doc): the wall clock in microseconds. A process
    makes far fewer than a million changes a second, so it never reaches what the clock will
    say when it is restarted."""
    return time.time_ns() // 1_000


class _Wait:
    """One waiting request: its event, and the index the change that woke it gave (None when
    the waker did not say: a reset, a drain, or a message from a replica that does not send it)."""

    __slots__ = ("event", "index")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.index: int | None = None


class Notifier:
    """The requests waiting for each partition to change.

    ``notify`` may be called with the store's lock held: it takes a lock of its own for a few
    dictionary operations and sets events, neither of which blocks or switches greenlets.
    Under gevent it must be called from the worker's thread, which monkey patching ensures for
    anything started with ``threading.Thread``.

    A change hands its new index to the waits it wakes, so that a woken wait does not read it
    again: one change wakes every watch of its partition at once, and on a shared store each
    read would be a round trip (1,000 watches woken on Redis: p99 650 -> ... ms)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[_Wait]] = {}

    def notify(self, partition: str, index: int | None = None) -> None:
        """Wake every wait on ``partition``, whose index is now ``index`` if given."""
        with self._lock:
            waits = self._waiting.pop(partition, None)
        _wake(waits or (), index)

    def notify_unheld(self, held: Callable[[str], bool], index: int) -> None:
        """Wake every wait on a partition that is not held: a removal raised their index to
        ``index``."""
        with self._lock:
            names = [name for name in self._waiting if not held(name)]
            woken = [self._waiting.pop(name) for name in names]
        for waits in woken:
            _wake(waits, index)

    def wake_all(self) -> None:
        """Wake every wait (a reset, or a shutdown that should not wait for them); each reads
        its partition's index again and goes back to waiting if it has not grown."""
        with self._lock:
            woken, self._waiting = list(self._waiting.values()), {}
        for waits in woken:
            _wake(waits, None)

    def wait(
        self,
        partition: str,
        current: Callable[[str], int],
        index: int,
        timeout: float,
        *,
        stop: Callable[[], bool],
    ) -> int | None:
        """Block until the index of ``partition`` is no longer ``index``, or ``timeout`` seconds
        pass, or ``stop()`` holds when a wake-up (such as wake_all) comes; returns the index it
        moved to, or None if it did not move. It moves by growing; an ``index`` above the
        current one was never given by this process (it comes from before a restart, or was
        made up), and answers at once too. ``current`` reads the index from the store."""
        deadline = time.monotonic() + timeout
        now = current(partition)
        while now == index:
            left = deadline - time.monotonic()
            if left <= 0 or stop():
                return None
            wait = _Wait()
            with self._lock:
                self._waiting.setdefault(partition, set()).add(wait)
            try:
                # Read again once registered: a change between the first read and the
                # registration notified nobody, but shows here.
                now = current(partition)
                if now != index:
                    break
                wait.event.wait(left)
            finally:
                self._forget(partition, wait)
            now = current(partition) if wait.index is None else wait.index
        return now

    def waiting(self) -> int:
        """How many waits are registered (tests and the watch gauge's checks)."""
        with self._lock:
            return sum(len(waits) for waits in self._waiting.values())

    def _forget(self, partition: str, wait: _Wait) -> None:
        with self._lock:
            waits = self._waiting.get(partition)
            if waits is not None:
                waits.discard(wait)
                if not waits:
                    del self._waiting[partition]


def _wake(waits: Iterable[_Wait], index: int | None) -> None:
    for wait in waits:
        wait.index = index
        wait.event.set()
