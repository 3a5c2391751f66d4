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
                return LimitExceeded(
                    MAX_PARTITIONS,
                    f"the registry already holds {len(parts.by_name)} partitions "
                    f"({MAX_PARTITIONS}={self.partitions})",
                )
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
            return LimitExceeded(
                MAX_ENTRIES_PER_PARTITION,
                f"partition would hold {len(entries) + fresh} entries "
                f"({MAX_ENTRIES_PER_PARTITION}={self.entries_per_partition})",
            )
        if self.entries and parts.entries + fresh > self.entries:
            return LimitExceeded(
                MAX_ENTRIES,
                f"the registry would hold {parts.entries + fresh} entries "
                f"({MAX_ENTRIES}={self.entries})",
            )
        return None


# Read by refusal for a partition not created yet; never written.
_NO_ENTRIES: dict[str, Entry] = {}
