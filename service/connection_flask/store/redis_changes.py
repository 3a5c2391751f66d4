"""Waits on a Redis store's change indexes, in every process that shares it.

Each script that changes a partition publishes its new index and its name on the store's
channel (``{prefix}:changes``, ``i<index> <partition>``; "*" when partitions were removed, which
raises the index of every one not held). A process whose requests wait for changes (watches)
runs one listener thread for that channel, started by its first wait, which hands each message
to changes.Notifier: the same waiting the in-memory store does, woken across workers and
replicas.

Redis down: waits still end at their timeout, reading the index raises StoreUnavailable, and
the listener subscribes again once Redis is back, then wakes every wait to read its index again
(changes made meanwhile told nobody).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from connection_flask.store.changes import Notifier

log = logging.getLogger("connection_flask")

# How long the listener blocks for a message before it looks at its stop flag again.
POLL_SECONDS = 1.0


class ChangeListener:
    def __init__(self, client: Callable[[], Any], channel: str, retry_seconds: float) -> None:
        self._client = client  # this process's client (made after the fork)
        self.channel = channel
        self.retry_seconds = retry_seconds
        self.notifier = Notifier()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._running = False
        self._stopped = False

    def ensure(self, timeout: float) -> None:
        """Start the listener unless it runs, and wait (up to ``timeout``) until it hears the
        channel, so that no change made after this returns goes unheard."""
        with self._lock:
            if not self._running:
                self._running = True
                self._stopped = False
                threading.Thread(
                    target=self._run, name="connection-flask-changes", daemon=True
                ).start()
        self._subscribed.wait(timeout)

    def stop(self) -> None:
        """End the thread within POLL_SECONDS."""
        self._stopped = True

    def after_fork_in_child(self) -> None:
        # The parent's thread and waits do not exist here.
        self.__init__(self._client, self.channel, self.retry_seconds)  # type: ignore[misc]

    def _run(self) -> None:
        failing = False
        while not self._stopped:
            try:
                self._listen()
                failing = False
            except Exception as exc:  # a thread of its own: nothing above it would log it
                if self._stopped:
                    break  # the store closed its connections under the listener
                if not failing:
                    log.warning("change listener: %s; subscribing again", exc)
                failing = True
                self._subscribed.clear()
                time.sleep(self.retry_seconds)
        with self._lock:
            self._running = False
            self._subscribed.clear()

    def _listen(self) -> None:
        pubsub = self._client().pubsub()
        try:
            pubsub.subscribe(self.channel)
            while not self._stopped:
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is None:
                    continue
                if message["type"] == "subscribe":  # Redis hears the channel for us from now
                    self._subscribed.set()
                    self.notifier.wake_all()  # changes before, or while Redis was away
                    continue
                self._hand_on(message["data"].decode())
        finally:
            pubsub.close()

    def _hand_on(self, data: str) -> None:
        index, _, partition = data[1:].partition(" ")
        if data.startswith("i") and index.isdigit():  # "i<index> <partition>"
            self.notifier.notify(partition, int(index))
        else:  # "*", or another form from another version (a rolling update): all read again
            self.notifier.wake_all()
