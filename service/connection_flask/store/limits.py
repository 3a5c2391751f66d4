"""The configured bounds on what a store holds, and the refusal a publish past one gets."""

from __future__ import annotations

from dataclasses import dataclass

from connection_flask.store.entries import Entry
from connection_flask.store.partition import Partitions
from connection_flask.store.values import Connection

MAX_PARTITIONS = "CONNECTION_FLASK_MAX_PARTITIONS"
MAX_ENTRIES_PER_PARTITION = "CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION"
MAX_ENTRIES = "CONNECTION_FLASK_MAX_ENTRIES"


class LimitExceeded(Exception):
    """A publish would grow the store past a configured limit; nothing was stored. ``setting``
    names the limit, so the store knows what to reclaim before it tries again."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True, slots=True)
class Limits:
    """0 means no limit."""

    partitions: int = 0
    entries_per_partition: int = 0
    entries: int = 0

    def refusal(
        self, parts: Partitions, partition: str, conns: list[Connection]
    ) -> LimitExceeded | None:
        """The limit storing ``conns`` would break, if any. Called with the store's lock held."""
        part = parts.by_name.get(partition)
        if part is None:
            if self.partitions and len(parts.by_name) >= self.partitions:
                return self.exceeded(MAX_PARTITIONS, len(parts.by_name))
            entries = _NO_ENTRIES
        else:
            entries = part.entries
        # Counting the new uids costs a set per publish; skip it while even "all new" fits.
        might_overflow = (
            self.entries_per_partition and len(entries) + len(conns) > self.entries_per_partition
        ) or (self.entries and parts.entries + len(conns) > self.entries)
        if not might_overflow:
            return None
        fresh = len({c.uid for c in conns if c.uid not in entries})
        if self.entries_per_partition and len(entries) + fresh > self.entries_per_partition:
            return self.exceeded(MAX_ENTRIES_PER_PARTITION, len(entries) + fresh)
        if self.entries and parts.entries + fresh > self.entries:
            return self.exceeded(MAX_ENTRIES, parts.entries + fresh)
        return None

    def exceeded(self, setting: str, count: int) -> LimitExceeded:
        """The refusal of a publish after which the store would hold ``count`` partitions
        (MAX_PARTITIONS: already holds) or entries; every store words it the same."""
        if setting == MAX_PARTITIONS:
            return LimitExceeded(
                setting,
                f"the registry already holds {count} partitions ({setting}={self.partitions})",
            )
        if setting == MAX_ENTRIES_PER_PARTITION:
            limit, whose = self.entries_per_partition, "partition"
        else:
            limit, whose = self.entries, "the registry"
        return LimitExceeded(setting, f"{whose} would hold {count} entries ({setting}={limit})")


NO_LIMITS = Limits()  # both stores' default: nothing bounded

# Read by refusal for a partition not created yet; never written.
_NO_ENTRIES: dict[str, Entry] = {}
