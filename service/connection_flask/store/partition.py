"""Partitions: each one's entries by uid and its indexes by data_type, and the table of them all.

Every method here writes and is called with the store's lock held; lookups read ``entries`` and
``index`` without it (see the store's doc)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from connection_flask.store.changes import Notifier, first_index
from connection_flask.store.entries import Entry
from connection_flask.store.index import Index
from connection_flask.store.values import Connection


class Partition:
    __slots__ = (
        "entries",
        "expired_seen",
        "index",
        "modify_index",
        "name",
        "newest",
        "next_reclaim",
        "seen_cutoff",
    )

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.entries: dict[str, Entry] = {}
        self.index: dict[str, Index] = {}
        self.modify_index = 0  # the change index (changes.py) of its last change
        # Time of the last publish. Stamps only grow, so no entry is newer: once this is past
        # TTL plus grace, every entry is, and the partition can go whole.
        self.newest = now
        # Entries the sweeper's last visit found expired but within the grace, and the expiry
        # cutoff of that visit: the live-entries gauge is stored entries less these.
        self.expired_seen = 0
        self.seen_cutoff = -math.inf
        # No reclaim for MAX_ENTRIES_PER_PARTITION before this time (one per sweep interval).
        self.next_reclaim = -math.inf

    def store(self, conns: list[Connection], now: float, expired: float) -> tuple[int, bool]:
        """Store a publish; returns how many uids are new to the partition, and whether its
        content changed: an entry added or replaced, or one stamped ``expired`` or before (so
        expired) made live again. A republish of the same connections within the TTL changes
        nothing but their times."""
        self.newest = now
        entries = self.entries
        fresh = 0
        revived = False
        added: dict[str, set[str]] = {}
        removed: dict[str, set[str]] = {}
        replaced: set[str] = set()
        for c in conns:
            old = entries.get(c.uid)
            if old is not None and old.connection == c:
                if old.stamp <= expired:
                    revived = True
                old.stamp = now
                continue
            entries[c.uid] = Entry(c, now)
            if old is None:
                fresh += 1
            if old is None or old.data_type != c.data_type:
                added.setdefault(c.data_type, set()).add(c.uid)
                if old is not None:
                    removed.setdefault(old.data_type, set()).add(c.uid)
                    # The same uid earlier in this publish with old's data_type: it must
                    # not be indexed there after all.
                    added.get(old.data_type, set()).discard(c.uid)
            else:
                replaced.add(c.data_type)
        changed = bool(added or removed or replaced)
        if changed:
            self.reindex(added, removed, replaced)
        return fresh, changed or revived

    def remove(self, uids: Iterable[str]) -> tuple[list[Entry], list[str]]:
        """Remove ``uids``; returns the entries removed and the uids the partition did not hold."""
        gone: list[Entry] = []
        missing: list[str] = []
        removed: dict[str, set[str]] = {}
        for uid in uids:
            entry = self.entries.pop(uid, None)
            if entry is None:
                missing.append(uid)
            else:
                gone.append(entry)
                removed.setdefault(entry.data_type, set()).add(uid)
        self.reindex({}, removed)
        return gone, missing

    def reindex(
        self,
        added: dict[str, set[str]],
        removed: dict[str, set[str]],
        replaced: Iterable[str] = (),
    ) -> None:
        """Rebuild the index of each data_type that gained or lost uids, or whose entries were
        replaced by new ones (a republish with another uri, connection_type or capacity)."""
        for data_type in added.keys() | removed.keys() | set(replaced):
            old = self.index.get(data_type)
            uids = old.uids if old is not None else []
            gone = removed.get(data_type)
            if gone:
                uids = [u for u in uids if u not in gone]
            new = added.get(data_type)
            if new:
                # Timsort merges the two sorted runs in linear time.
                uids = sorted(uids + sorted(new))
            if uids:
                entries = self.entries
                self.index[data_type] = Index(uids, [entries[u] for u in uids])
            else:
                self.index.pop(data_type, None)


class Partitions:
    """Every partition by name, and the totals the gauges read in O(1), kept by every write;
    the change indexes (changes.py), bumped by every write that changes content."""

    __slots__ = (
        "by_name",
        "entries",
        "expired_seen",
        "last_index",
        "next_reclaim",
        "notifier",
        "removed_index",
    )

    def __init__(self, notifier: Notifier) -> None:
        self.by_name: dict[str, Partition] = {}
        self.entries = 0  # stored entries over all partitions
        self.expired_seen = 0  # sum of the partitions' expired_seen
        self.next_reclaim = -math.inf  # no reclaim for MAX_ENTRIES before this time
        self.notifier = notifier
        # The store-wide change index, and its value at the last removal of a partition: the
        # index of every partition not held.
        self.last_index = self.removed_index = first_index()

    def clear(self) -> None:
        self.by_name.clear()
        self.entries = self.expired_seen = 0
        self.next_reclaim = -math.inf
        self.last_index += 1
        self.removed_index = self.last_index
        self.notifier.wake_all()

    def index_of(self, name: str) -> int:
        """A partition's change index. Lock-free (two attribute reads): a waiter reads it after
        registering with the notifier, so a change it misses here wakes it."""
        part = self.by_name.get(name)
        return self.removed_index if part is None else part.modify_index

    def changed(self, part: Partition) -> None:
        self.last_index += 1
        part.modify_index = self.last_index
        self.notifier.notify(part.name, part.modify_index)

    def holds(self, part: Partition) -> bool:
        """Whether ``part`` is still the partition of its name: a walk that began before a
        retract, reset or drop (and maybe a new publish to that name) must leave it alone."""
        return self.by_name.get(part.name) is part

    def store(self, name: str, conns: list[Connection], now: float, expired: float) -> Partition:
        part = self.by_name.get(name)
        created = part is None
        if part is None:
            part = self.by_name[name] = Partition(name, now)
        fresh, changed = part.store(conns, now, expired)
        self.entries += fresh
        if changed or created:
            self.changed(part)
        return part

    def retract(self, part: Partition, uids: Iterable[str]) -> list[str]:
        """Remove ``uids`` from ``part``, and ``part`` if that empties it; returns the uids it
        did not hold."""
        gone, missing = part.remove(uids)
        # Entries the sweeper counted expired leave that count with them, or the live-entries
        # gauge would subtract them twice.
        seen = min(part.expired_seen, sum(e.stamp <= part.seen_cutoff for e in gone))
        part.expired_seen -= seen
        self.expired_seen -= seen
        self._forget(part, len(gone))
        return missing

    def remove(self, part: Partition, gone: list[Entry]) -> int:
        """Remove entries a walk found long expired, and ``part`` if that empties it."""
        part.remove([e.uid for e in gone])
        self._forget(part, len(gone))
        return len(gone)

    def _forget(self, part: Partition, removed: int) -> None:
        self.entries -= removed
        if not part.entries:
            self.drop(part)
        elif removed:
            self.changed(part)

    def drop(self, part: Partition) -> int:
        """Remove a partition whole; returns the entries it held."""
        del self.by_name[part.name]
        self.entries -= len(part.entries)
        self.expired_seen -= part.expired_seen
        self.last_index += 1
        self.removed_index = self.last_index
        self.notifier.notify_unheld(self.by_name.__contains__, self.removed_index)
        return len(part.entries)
