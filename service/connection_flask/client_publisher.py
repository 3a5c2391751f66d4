"""``Publisher``: keeps a DAQ application's connections published, as the C++ client does.
Exported by connection_flask.client; a module of its own to keep that one short."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from connection_flask.client_wire import Connection, RegistryError, Unavailable

if TYPE_CHECKING:  # the client imports this module
    from connection_flask.client import RegistryClient

log = logging.getLogger("connection_flask.client")


class Publisher:
    """Keeps ``connections`` published, as a DAQ application does: publishes them on entry and
    every ``interval`` seconds from a daemon thread, and retracts them on exit.

    A server that goes away (a restart, a network cut) is asked again every interval, without
    giving up; the outage is logged once when it starts and once when it ends. Entering raises
    Refused if the server refuses the connections (bad input, wrong token)."""

    def __init__(
        self, client: RegistryClient, connections: Iterable[Connection], interval: float = 2.0
    ) -> None:
        self.client = client
        self.connections = tuple(connections)
        self.interval = interval
        self.failing: RegistryError | None = None  # the error of the outage in progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-publisher", daemon=True)

    def __enter__(self) -> Self:
        try:
            self.client.publish(self.connections, retries=0)
        except Unavailable as exc:
            self._failed(exc)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.client.retract(self.connections)
        except RegistryError as error:  # never hide the exception that ends the block
            log.warning("could not retract %d connections: %s", len(self.connections), error)

    def _run(self) -> None:
        # Each publish is one attempt: the next interval is the retry, and backing off within
        # an attempt would only push the next publish later.
        while not self._stop.wait(self.interval):
            try:
                self.client.publish(self.connections, retries=0)
            except RegistryError as exc:
                self._failed(exc)
                continue
            if self.failing is not None:
                log.warning("publishing to partition %s works again", self.client.partition)
                self.failing = None

    def _failed(self, exc: RegistryError) -> None:
        if self.failing is None:
            log.warning(
                "publishing %d connections to partition %s failed (%s); retrying every %.3g s",
                len(self.connections),
                self.client.partition,
                exc,
                self.interval,
            )
        self.failing = exc
