"""A small typed client for the registry: the DAQ wire contract (docs/API.md) and the JSON admin
API, on one pooled ``httpx.Client``.

It behaves as DAQ run control's own client does (drunc), so tools can rely on the same things:
a request times out after ``timeout`` (0.5 s); no answer, 502, 503 and 504 are retried with
backoff; a 404 on retract means "already gone", not a failure; a lookup that finds nothing (or an
unknown partition, whose publisher may still be booting) asks again with backoff until its
deadline. It imports nothing of the server, so a tool that uses it pulls in httpx only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self
from urllib.parse import quote

import httpx

from connection_flask import __version__, client_wire
from connection_flask.client_publisher import Publisher
from connection_flask.client_wire import (
    INDEX_HEADER,
    Connection,
    Entry,
    NotFound,
    PartitionInfo,
    Refused,
    RegistryError,
    Snapshot,
    Unavailable,
    backoff,
    bearer,
    check,
    decode,
    duration,
    retry_after,
)

log = logging.getLogger("connection_flask.client")

WRITE_TOKEN_ENV = "CONNECTION_FLASK_WRITE_TOKEN"
READ_TOKEN_ENV = "CONNECTION_FLASK_READ_TOKEN"
# No answer from a proxy or a server that is starting or draining: worth asking again.
RETRIED_STATUSES = frozenset({502, 503, 504})

__all__ = [
    "Connection",
    "Entry",
    "NotFound",
    "PartitionInfo",
    "Publisher",
    "Refused",
    "RegistryClient",
    "RegistryError",
    "Snapshot",
    "Unavailable",
]


class RegistryClient:
    """The registry at ``base_url``, for one ``partition`` (the DAQ calls need it; the admin
    calls take another as an argument). Thread-safe: share one per process."""

    def __init__(
        self,
        base_url: str,
        partition: str | None = None,
        *,
        timeout: float = 0.5,
        retries: int = 5,
        backoff: float = 0.05,
        lookup_wait: float = 1.0,
        write_token: str | None = None,
        read_token: str | None = None,
    ) -> None:
        if "://" not in base_url:  # drunc accepts a bare host:port too
            base_url = "http://" + base_url
        self.base_url = base_url.rstrip("/")
        self.partition = partition
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.lookup_wait = lookup_wait
        write = write_token if write_token is not None else os.environ.get(WRITE_TOKEN_ENV, "")
        read = read_token if read_token is not None else os.environ.get(READ_TOKEN_ENV, "")
        # The server takes the write token wherever it asks for the read token.
        self._write_auth = bearer(write)
        self._read_auth = bearer(read) or self._write_auth
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"User-Agent": f"connection-flask-client/{__version__}"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the DAQ wire contract

    def publish(self, connections: Iterable[Connection], *, retries: int | None = None) -> None:
        body = {"partition": self._name(), "connections": [c.to_wire() for c in connections]}
        check(self._send("POST", "/publish", json=body, write=True, retries=retries))

    def lookup(
        self, uid_regex: str, data_type: str, *, wait: float | None = None
    ) -> list[Connection]:
        """Live connections of ``data_type`` whose uid matches ``uid_regex`` as a whole, in uid
        order. While there are none, or the partition is unknown, asks again with backoff for up
        to ``wait`` seconds (default ``lookup_wait``); then returns [] for a held partition and
        raises NotFound for an unknown one."""
        deadline = time.monotonic() + (self.lookup_wait if wait is None else wait)
        path = "/getconnection/" + quote(self._name(), safe="")
        body = {"uid_regex": uid_regex, "data_type": data_type}
        pauses = backoff(self.backoff / 5)  # applications poll every few ms at boot
        while True:
            response = self._send("POST", path, json=body)
            if response.status_code != 404:
                found = decode(client_wire.connections, response)
                if found:
                    return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                check(response)  # NotFound for an unknown partition
                return []
            time.sleep(min(next(pauses), remaining))

    def retract(
        self, connections: Iterable[str | Connection], *, data_type: str | None = None
    ) -> bool:
        """Remove uids (or connections) from the partition. Whether all were held: a 404 means
        they are already gone, which is what the caller wanted."""
        items = []
        for c in connections:
            uid, kind = (c, data_type) if isinstance(c, str) else (c.uid, c.data_type)
            items.append({"connection_id": uid} | ({"data_type": kind} if kind else {}))
        body = {"partition": self._name(), "connections": items}
        response = self._send("POST", "/retract", json=body, write=True)
        if response.status_code == 404:
            log.debug("retract in %s: %s", body["partition"], client_wire.message(response))
            return False
        check(response)
        return True

    def retract_partition(self) -> bool:
        """Remove the partition and all its entries; False if it was not held."""
        body = {"partition": self._name()}
        response = self._send("POST", "/retract-partition", json=body, write=True)
        if response.status_code == 404:
            return False
        check(response)
        return True

    def ready(self) -> bool:
        """Whether the server answers its dump page with a 2xx, once, as drunc asks."""
        return self.probe("/") in range(200, 300)

    def probe(self, path: str) -> int | None:
        """The status ``path`` answers (one attempt), None without an answer."""
        try:
            return self._http.get(path, headers=self._read_auth).status_code
        except httpx.TransportError:
            return None

    # ------------------------------------------------------------------------ the admin API

    def partitions(self) -> list[PartitionInfo]:
        response = self._send("GET", "/api/v1/partitions")
        if response.status_code == 404:
            raise NotFound(f"{self.base_url} has no admin API (GET /api/v1/partitions: 404)", 404)
        return decode(client_wire.partitions, response)

    def page(
        self,
        partition: str | None = None,
        *,
        uid_regex: str = "",
        data_type: str = "",
        limit: int | None = None,
        cursor: str | None = None,
        index: int | None = None,
        wait: float | None = None,
    ) -> tuple[Snapshot, str | None]:
        """One page of a partition's entries and the cursor of the next (None at the end). With
        ``index`` and ``wait`` the server holds the answer until the partition's index passes
        ``index`` or ``wait`` elapses. An unknown partition is a Snapshot with exists False."""
        name = partition or self._name()
        params: dict[str, str | int] = {}
        # An empty uid_regex or data_type means "any": the server reads a given one literally.
        given = {"uid_regex": uid_regex, "data_type": data_type, "limit": limit, "cursor": cursor}
        for key, value in {**given, "index": index}.items():
            if value is not None and value != "":
                params[key] = value
        timeout: float | httpx.Timeout = self.timeout
        if wait is not None:
            params["wait"] = duration(wait)
            # The server may add a little to the wait (jitter); the read must outlast both.
            timeout = httpx.Timeout(self.timeout, read=wait * 1.1 + self.timeout + 1)
        path = f"/api/v1/partitions/{quote(name, safe='')}/connections"
        while True:
            response = self._send("GET", path, params=params, timeout=timeout)
            if response.status_code != 429:  # too many watches: come back when told to
                break
            time.sleep(retry_after(response))
        if response.status_code == 404 and INDEX_HEADER in response.headers:
            return Snapshot(name, int(response.headers[INDEX_HEADER]), (), exists=False), None
        return decode(client_wire.page, response)

    def connections(
        self,
        partition: str | None = None,
        *,
        uid_regex: str = "",
        data_type: str = "",
        page_size: int | None = None,
    ) -> Snapshot:
        """Every entry of a partition, expired ones included, following the cursor page by page.
        Raises NotFound for an unknown partition."""
        snap, cursor = self.page(
            partition, uid_regex=uid_regex, data_type=data_type, limit=page_size
        )
        return self._rest(snap, cursor, uid_regex, data_type, page_size)

    def watch(
        self,
        partition: str | None = None,
        *,
        uid_regex: str = "",
        data_type: str = "",
        index: int = 0,
        wait: float = 30.0,
    ) -> Iterator[Snapshot]:
        """Each new state of a partition, by blocking queries: with ``index`` 0 (the default)
        first its current state at once, then each state with a higher index than the last.
        While the partition is not held, its state is a Snapshot with exists False. A server
        that restarted counts its indexes from 0 again: a lower index is a new state too."""
        pauses = backoff(self.backoff)
        seen, first = index, index == 0
        while True:
            started = time.monotonic()
            hold = None if first else wait  # index 0: the state now, whatever its index
            snap, cursor = self.page(
                partition, uid_regex=uid_regex, data_type=data_type, index=seen, wait=hold
            )
            if first or snap.index != seen:
                seen, first = snap.index, False
                pauses = backoff(self.backoff)
                yield self._rest(snap, cursor, uid_regex, data_type, None) if snap.exists else snap
            elif time.monotonic() - started < wait / 2:
                # Unchanged, and answered well before the wait: a server that does not hold
                # queries must not turn this loop into a busy one.
                time.sleep(next(pauses))

    # ------------------------------------------------------------------------------ plumbing

    def _rest(
        self, snap: Snapshot, cursor: str | None, uid_regex: str, data_type: str, size: int | None
    ) -> Snapshot:
        """``snap`` with the pages after ``cursor`` added; the first page's index is kept, so a
        change made while paging is still seen by the next watch."""
        if not snap.exists:
            raise NotFound(f"partition {snap.partition!r} is not held", 404)
        entries = list(snap.connections)
        while cursor:
            more, cursor = self.page(
                snap.partition, uid_regex=uid_regex, data_type=data_type, limit=size, cursor=cursor
            )
            entries += more.connections
        return Snapshot(snap.partition, snap.index, tuple(entries))

    def _name(self) -> str:
        if not self.partition:
            raise ValueError("this RegistryClient was made without a partition")
        return self.partition

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        write: bool = False,
        retries: int | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One request, retried with backoff while there is no answer or a 502/503/504; any
        other answer is returned as it is."""
        pauses = backoff(self.backoff)
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                response = self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=self._write_auth if write else self._read_auth,
                    timeout=self.timeout if timeout is None else timeout,
                )
            except httpx.TransportError as exc:
                failure: RegistryError = Unavailable(f"{method} {self.base_url}{path}: {exc!r}")
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return response
                failure = client_wire.error(response)
            if attempt + 1 < attempts:
                time.sleep(next(pauses))
        raise failure
