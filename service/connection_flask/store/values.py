"""The values every store takes and gives back, whatever holds the entries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

Clock = Callable[[], float]


class Connection(msgspec.Struct, frozen=True, gc=False):
    """One connection as a client publishes it. A msgspec Struct: a publish body decodes
    straight into these (validation.py declares the same fields with their length limits, as a
    subclass), an unchanged republish is recognised by one ``==`` (true only between values of
    the same class: the API's all come from its app's one subclass), and ``gc=False`` keeps the
    100k held ones out of the garbage collector's walks (they hold only strings and ints)."""

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
