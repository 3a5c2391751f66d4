"""A stored connection: the published Connection, its time and its JSON, encoded once."""

from __future__ import annotations

import operator

import orjson

from connection_flask.store.values import Connection, EntryView


class Entry:
    """Replaced, never edited, when its fields change; only ``stamp`` (the time of the last
    publish) is refreshed in place by a republish with the same fields."""

    __slots__ = ("connection", "data_type", "json", "stamp", "uid")

    def __init__(self, c: Connection, stamp: float) -> None:
        self.connection = c
        # The Connection is the entry's fields; uid and data_type alone are also slots, because
        # lookups, index builds and walks read them per row: one slot read instead of two
        # attribute reads (when Connection was a NamedTuple, an `app000.+` lookup over 1,000
        # rows took 18% more instructions reading uid through it). The dump page alone reads
        # the other fields.
        self.uid = c.uid
        self.data_type = c.data_type
        self.stamp = stamp
        # Encoded once per change, so a lookup joins bytes; key order is the old server's.
        # Copied: orjson hands back bytes inside a buffer of at least 4 KiB (it sets the
        # length, not the allocation), which at 100k entries held ~400 MB instead of ~15 MB.
        self.json = bytes(memoryview(encode(c)))

    def view(self, now: float, ttl: float) -> EntryView:
        c = self.connection
        age = now - self.stamp
        return EntryView(c.uid, c.uri, c.data_type, c.connection_type, c.capacity, age, age >= ttl)


def encode(c: Connection) -> bytes:
    """The JSON a lookup answers for ``c``, as every store holds it."""
    return orjson.dumps(
        {
            "uid": c.uid,
            "uri": c.uri,
            "connection_type": c.connection_type,
            "data_type": c.data_type,
            "capacity": c.capacity,
        }
    )


uid_of = operator.attrgetter("uid")
stamp_of = operator.attrgetter("stamp")
