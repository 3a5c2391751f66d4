"""The values every store takes and gives back, whatever holds the entries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

Clock = Callable[[], float]


class Connection(NamedTuple):
    """One connection as a client publishes it. A tuple: built 20 times per publish, and an
    unchanged republish is recognised by one tuple comparison."""

    uid: str
    uri: str
    data_type: str
    connection_type: int
    capacity: int = 0


class PartitionCount(NamedTuple):
    """A partition's entries: ``live`` ones and ``expired`` ones (expired as of the sweeper's
    last visit to it, like the live-entries gauge), which lookups no longer see."""

    name: str
    live: int
    expired: int


@dataclass(frozen=True, slots=True)
class PublishResult:
    stored: int


@dataclass(frozen=True, slots=True)
class RetractResult:
    partition_found: bool
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry as the dump page shows it: the connection's fields in their order, then how long
    ago it was last published and whether lookups still see it."""

    uid: str
    uri: str
    data_type: str
    connection_type: int
    capacity: int
    age: float
    expired: bool
