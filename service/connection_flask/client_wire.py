"""What ``connection_flask.client`` sends and gets back: its values, its errors, and the reading
of answers into them. Only httpx and the standard library, like the client itself."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

INDEX_HEADER = "X-Registry-Index"
BACKOFF_CAP = 1.0  # seconds: the longest pause between two attempts

T = TypeVar("T")


class RegistryError(Exception):
    """What the registry could not do. ``status`` is the HTTP status, None without an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFound(RegistryError):
    """404: the partition (or a uid in it) is not held."""


class Refused(RegistryError):
    """Any other 4xx: bad input, a missing or wrong token, a limit reached."""


class Unavailable(RegistryError):
    """No answer (refused, reset, timed out) or a 5xx, after every retry."""


@dataclass(frozen=True, slots=True)
class Connection:
    """One published endpoint, as the wire carries it."""

    uid: str
    uri: str
    data_type: str
    connection_type: int = 0  # 0 send/receive, 1 publish/subscribe
    capacity: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "uri": self.uri,
            "data_type": self.data_type,
            "connection_type": self.connection_type,
            "capacity": self.capacity,
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> Connection:
        return cls(
            str(obj["uid"]),
            str(obj["uri"]),
            str(obj["data_type"]),
            int(obj["connection_type"]),
            int(obj.get("capacity") or 0),
        )


@dataclass(frozen=True, slots=True)
class Entry(Connection):
    """A connection as the admin API shows it: seconds since its last publish, and whether
    lookups still return it."""

    age_seconds: float = 0.0
    expired: bool = False

    def to_wire(self) -> dict[str, Any]:
        # Connection.to_wire by name: a slots dataclass breaks zero-argument super().
        return {
            **Connection.to_wire(self),
            "age_seconds": self.age_seconds,
            "expired": self.expired,
        }

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> Entry:
        c = Connection.from_wire(obj)
        age, expired = float(obj["age_seconds"]), bool(obj["expired"])
        return cls(c.uid, c.uri, c.data_type, c.connection_type, c.capacity, age, expired)


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    name: str
    live: int
    expired: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A partition's entries as of ``index`` (which grows with every change to it); ``exists``
    is False while the server holds no such partition."""

    partition: str
    index: int
    connections: tuple[Entry, ...]
    exists: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "index": self.index,
            "exists": self.exists,
            "connections": [c.to_wire() for c in self.connections],
        }


def backoff(first: float, cap: float = BACKOFF_CAP) -> Iterator[float]:
    """Pauses that double from ``first`` up to ``cap``, each cut to a random 50-100%, so that
    clients which failed together (a server restart) do not all come back together."""
    step = first
    while True:
        yield step * random.uniform(0.5, 1.0)
        step = min(step * 2, cap)


def duration(seconds: float) -> str:
    """Seconds as the admin API's ``wait`` parameter takes them (Go style)."""
    return f"{round(seconds * 1000)}ms"


def bearer(token: str) -> dict[str, str]:
    token = token.strip()  # as the server does: a token file's newline is not part of it
    return {"Authorization": f"Bearer {token}"} if token else {}


def message(response: httpx.Response) -> str:
    """The server's ``{"error": ...}`` text, or the start of whatever it sent."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
    return str(error)


def error(response: httpx.Response) -> RegistryError:
    status = response.status_code
    kind = NotFound if status == 404 else Refused if status < 500 else Unavailable
    where = f"{response.request.method} {response.url.path}"
    return kind(f"{where}: {status} {message(response)}", status)


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise error(response)
    return response


def decode(build: Callable[[Any], T], response: httpx.Response) -> T:
    """``build`` applied to a 2xx answer's JSON; any other status raises its error, and an
    answer without the documented shape a RegistryError."""
    check(response)
    try:
        return build(response.json())
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RegistryError(f"unexpected answer from the registry: {exc!r}") from exc


def connections(data: Any) -> list[Connection]:
    return [Connection.from_wire(c) for c in data]


def partitions(data: Any) -> list[PartitionInfo]:
    return [
        PartitionInfo(str(p["name"]), int(p["live"]), int(p["expired"])) for p in data["partitions"]
    ]


def page(data: Any) -> tuple[Snapshot, str | None]:
    entries = tuple(Entry.from_wire(c) for c in data["connections"])
    snap = Snapshot(str(data["partition"]), int(data["index"]), entries)
    return snap, (str(data["next_cursor"]) if data.get("next_cursor") else None)


def retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:  # an HTTP date: rare, and a second is a fair wait
        return 1.0
