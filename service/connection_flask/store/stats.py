"""The old server's statistics page: call counts, time spent and peak sizes since a reset."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace


@dataclass
class CallStats:
    since: float = field(default_factory=time.time)
    publishes: int = 0
    publish_seconds: float = 0.0
    lookups: int = 0
    lookup_seconds: float = 0.0
    max_partitions: int = 0
    max_entries: dict[str, int] = field(default_factory=dict)


class CallCounter:
    """The statistics as a store keeps them. Called with the store's lock held."""

    def __init__(self) -> None:
        self._stats = CallStats()

    def record(self, kind: str, seconds: float) -> None:
        stats = self._stats
        if kind == "publish":
            stats.publishes += 1
            stats.publish_seconds += seconds
        else:
            stats.lookups += 1
            stats.lookup_seconds += seconds

    def note_sizes(self, held: Collection[str], name: str, entries: int) -> None:
        """Note the partitions ``held`` and that partition ``name`` holds ``entries``."""
        stats = self._stats
        stats.max_partitions = max(stats.max_partitions, len(held))
        peaks = stats.max_entries
        if entries > peaks.get(name, 0):
            # One line per partition ever seen would grow without bound as partitions come and
            # go: past twice the live count, forget the peaks of partitions that are gone.
            if name not in peaks and len(peaks) >= 2 * len(held) + 64:
                for gone in [n for n in peaks if n not in held]:
                    del peaks[gone]
            peaks[name] = entries

    def read(self, *, reset: bool = False) -> CallStats:
        """The statistics, a copy its reader may iterate while publishes go on."""
        current = self._stats
        if reset:
            self._stats = CallStats()
        return replace(current, max_entries=dict(current.max_entries))
