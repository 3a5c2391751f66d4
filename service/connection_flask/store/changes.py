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
from collections.abc import Callable


def first_index() -> int:
    """Where a store's counter starts (module doc): the wall clock in microseconds. A process
    makes far fewer than a million changes a second, so it never reaches what the clock will
    say when it is restarted."""
    return time.time_ns() // 1_000


class Notifier:
    """The events of the requests waiting for each partition to change.

    ``notify`` may be called with the store's lock held: it takes a lock of its own for a few
    dictionary operations and sets events, neither of which blocks or switches greenlets.
    Under gevent it must be called from the worker's thread, which monkey patching ensures for
    anything started with ``threading.Thread``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}

    def notify(self, partition: str) -> None:
        """Wake every wait on ``partition``."""
        with self._lock:
            events = self._waiting.pop(partition, None)
        for event in events or ():
            event.set()

    def notify_unheld(self, held: Callable[[str], bool]) -> None:
        """Wake every wait on a partition that is not held: a removal raised their index."""
        with self._lock:
            names = [name for name in self._waiting if not held(name)]
            woken = [self._waiting.pop(name) for name in names]
        for events in woken:
            for event in events:
                event.set()

    def wake_all(self) -> None:
        """Wake every wait (a reset, or a shutdown that should not wait for them); each checks
        its partition's index again and goes back to waiting if it has not grown."""
        with self._lock:
            woken, self._waiting = list(self._waiting.values()), {}
        for events in woken:
            for event in events:
                event.set()

    def wait(
        self,
        partition: str,
        current: Callable[[str], int],
        index: int,
        timeout: float,
        *,
        stop: Callable[[], bool],
    ) -> bool:
        """Block until ``current(partition)`` is no longer ``index``, or ``timeout`` seconds pass,
        or ``stop()`` holds when a wake-up (such as wake_all) comes; returns whether the index
        moved. It moves by growing; an ``index`` above the current one was never given by this
        process (it comes from before a restart, or was made up), and answers at once too."""
        deadline = time.monotonic() + timeout
        while True:
            if current(partition) != index:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or stop():
                return False
            event = threading.Event()
            with self._lock:
                self._waiting.setdefault(partition, set()).add(event)
            try:
                # Read again once registered: a change between the first read and the
                # registration notified nobody, but shows here.
                if current(partition) != index:
                    continue
                event.wait(left)
            finally:
                self._forget(partition, event)

    def waiting(self) -> int:
        """How many waits are registered (tests and the watch gauge's checks)."""
        with self._lock:
            return sum(len(events) for events in self._waiting.values())

    def _forget(self, partition: str, event: threading.Event) -> None:
        with self._lock:
            events = self._waiting.get(partition)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[partition]
