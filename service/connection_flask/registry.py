"""Partitions of published connections, with TTL, purge and lookup indexes.

Pure Python: no Flask, no I/O. Thread-safety model (CPython with the GIL):
- every write (publish, retract, purge, sweep, reset) holds ``self._lock``;
- lookups take no lock. They read a partition's per-data_type uid list, which writers never
  mutate but replace with a new list, and single ``dict.get`` calls, which are atomic. So a long
  lookup never stalls publishes, and a lookup sees each entry either before or after a write.

Under Gunicorn's gevent worker all requests share one thread, so nothing may run long without
yielding. Work that grows with the registry (sweeps, purge, reclaiming at a limit, the dump
page's reads) goes in chunks of at most SWEEP_CHUNK entries, holds the lock per chunk only and
calls ``time.sleep(0)`` between chunks: gevent then runs other greenlets, threads get the GIL.

How expired state goes away: an entry is invisible ENTRY_TTL after its last publish; the
background sweeper (``sweep_once``, a bounded pass every ``sweep_interval`` seconds, round-robin
over the partitions) removes it once the purge grace has passed too; ``purge`` removes every
expired entry at once. A partition goes when a write removes its last entry, or when nothing has
been published to it for longer than ENTRY_TTL plus the grace (all of it is long expired then,
and it is dropped whole in O(1)). A publish that would break a limit first reclaims what expired
past the grace, then checks again, so a full registry recovers by itself.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import math
import operator
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import orjson

from connection_flask.matching import Matcher

Clock = Callable[[], float]

log = logging.getLogger("connection_flask")

# Entries (or partitions) looked at per hold of the lock: about 0.1 ms of work, so that is about
# how long a publish waits behind a sweep, a purge or a reclaim. gevent polls for I/O only every
# 50 yields (or 5 ms): chunks much longer would hold a waiting lookup up to 50 chunks per step.
SWEEP_CHUNK = 1_000
# Entries one pass of the background sweeper looks at: a round over a million entries takes 20
# passes, and a pass costs a few ms of CPU.
SWEEP_PER_PASS = 50_000

MAX_PARTITIONS = "CONNECTION_FLASK_MAX_PARTITIONS"
MAX_ENTRIES_PER_PARTITION = "CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION"
MAX_ENTRIES = "CONNECTION_FLASK_MAX_ENTRIES"


class LimitExceeded(Exception):
    """A publish would grow the registry past a configured limit; nothing was stored."""

    def __init__(self, setting: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.limit = limit


class Connection(NamedTuple):
    """One connection as a client publishes it. A tuple: built 20 times per publish, and an
    unchanged republish is recognised by one tuple comparison."""

    uid: str
    uri: str
    data_type: str
    connection_type: int
    capacity: int = 0


class Entry:
    """A stored connection. Replaced, never edited, when its fields change; only ``stamp`` (the
    time of the last publish) is refreshed in place by a republish with the same fields."""

    __slots__ = (
        "capacity",
        "connection",
        "connection_type",
        "data_type",
        "json",
        "stamp",
        "uid",
        "uri",
    )

    def __init__(self, c: Connection, stamp: float) -> None:
        self.connection = c
        self.uid = c.uid
        self.uri = c.uri
        self.data_type = c.data_type
        self.connection_type = c.connection_type
        self.capacity = c.capacity
        self.stamp = stamp
        # Encoded once per change, so a lookup joins bytes; key order is the old server's.
        # Copied: orjson hands back bytes inside a buffer of at least 4 KiB (it sets the
        # length, not the allocation), which at 100k entries held ~400 MB instead of ~15 MB.
        self.json = bytes(
            memoryview(
                orjson.dumps(
                    {
                        "uid": c.uid,
                        "uri": c.uri,
                        "connection_type": c.connection_type,
                        "data_type": c.data_type,
                        "capacity": c.capacity,
                    }
                )
            )
        )


class _Index:
    """One data_type's entries in uid order: a snapshot, replaced whenever the set of entries
    changes (see module doc), so a lookup reads it whole without a lock."""

    __slots__ = ("floor", "jsons", "newline", "rows", "uids")

    def __init__(self, uids: list[str], rows: list[Entry]) -> None:
        self.uids = uids
        self.rows = rows
        self.jsons = [e.json for e in rows]
        # Whether any uid holds a newline, which `.` does not match.
        self.newline = any("\n" in u for u in uids)
        # A lower bound of every row's stamp. Stamps only grow (a republish refreshes one in
        # place), so once set it stays a lower bound; while it is above a lookup's cutoff,
        # every row is live and the answer needs no per-entry check.
        self.floor = min(e.stamp for e in rows)


class _Partition:
    __slots__ = (
        "entries",
        "expired_seen",
        "index",
        "name",
        "newest",
        "next_reclaim",
        "seen_cutoff",
    )

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.entries: dict[str, Entry] = {}
        self.index: dict[str, _Index] = {}
        # Time of the last publish. Stamps only grow, so no entry is newer: once this is past
        # TTL plus grace, every entry is, and the partition can go whole.
        self.newest = now
        # Entries the sweeper's last visit found expired but within the grace, and the expiry
        # cutoff of that visit: the live-entries gauge is stored entries less these.
        self.expired_seen = 0
        self.seen_cutoff = -math.inf
        # No reclaim for MAX_ENTRIES_PER_PARTITION before this time (one per sweep interval).
        self.next_reclaim = -math.inf

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
                self.index[data_type] = _Index(uids, [entries[u] for u in uids])
            else:
                self.index.pop(data_type, None)


@dataclass(frozen=True, slots=True)
class PublishResult:
    stored: int


@dataclass(frozen=True, slots=True)
class RetractResult:
    partition_found: bool
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntryView:
    uid: str
    uri: str
    data_type: str
    connection_type: int
    capacity: int
    age: float
    expired: bool


@dataclass
class CallStats:
    """The old server's statistics page: call counts and time spent, since the last reset."""

    since: float = field(default_factory=time.time)
    publishes: int = 0
    publish_seconds: float = 0.0
    lookups: int = 0
    lookup_seconds: float = 0.0
    max_partitions: int = 0
    max_entries: dict[str, int] = field(default_factory=dict)


class _Walk:
    """A walk over some partitions in bounded steps (``Registry._step``) that removes what
    expired more than ``grace`` ago: where it stands between two steps.

    In a partition it reads the per-data_type uid lists as they were when it got there: writers
    replace those lists and never change them, so nothing is copied, and entries published later
    are fresh anyway. Long-expired entries are removed when the partition is done, so its indexes
    are rebuilt once per walk rather than once per chunk."""

    __slots__ = (
        "done",
        "entries",
        "expired",
        "gone",
        "grace",
        "lists",
        "part",
        "pos",
        "seen_cutoff",
        "todo",
    )

    def __init__(self, parts: list[_Partition], grace: float, *, entries: bool = True) -> None:
        self.todo = parts
        self.grace = grace
        # False: only drop partitions that are long expired as a whole, O(partitions), which is
        # all MAX_PARTITIONS needs.
        self.entries = entries
        self.done = False
        self.part: _Partition | None = None
        self.lists: list[list[str]] = []
        self.pos = 0
        self.gone: list[Entry] = []
        self.expired = 0
        self.seen_cutoff = -math.inf

    def begin(self, part: _Partition, live_cutoff: float) -> None:
        self.part = part
        self.lists = [index.uids for index in part.index.values()]
        self.pos = 0
        self.gone = []
        self.expired = 0
        self.seen_cutoff = live_cutoff

    def look(self, entries: dict[str, Entry], budget: int, cutoff: float, live: float) -> int:
        """Look at up to ``budget`` uids of the current list; returns how many it looked at."""
        uids = self.lists[-1]
        start = self.pos
        end = min(len(uids), start + budget)
        for uid in uids[start:end]:
            e = entries.get(uid)
            if e is not None and (stamp := e.stamp) <= live:
                if stamp <= cutoff:
                    self.gone.append(e)
                else:
                    self.expired += 1
        if end == len(uids):
            self.lists.pop()
            self.pos = 0
        else:
            self.pos = end
        return end - start


class Registry:
    def __init__(
        self,
        ttl: float,
        grace: float,
        *,
        clock: Clock = time.monotonic,
        max_partitions: int = 0,
        max_entries_per_partition: int = 0,
        max_entries: int = 0,
        sweep_interval: float = 1.0,
        background_sweep: bool = False,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.grace = grace
        self.clock = clock
        self.max_partitions = max_partitions
        self.max_entries_per_partition = max_entries_per_partition
        self.max_entries = max_entries
        # Seconds between two passes of the sweeper, and the least time between two reclaims of
        # entries at a limit (so a client at a limit cannot make every publish walk the registry).
        self.sweep_interval = sweep_interval
        # Whether the first publish starts a sweeper thread. Off, the owner calls sweep_once.
        self.background_sweep = background_sweep
        # Told how many entries each sweep or reclaim removed (the entries_expired counter).
        self.on_expired = on_expired
        self._lock = threading.Lock()
        self._parts: dict[str, _Partition] = {}
        self._entries = 0  # stored entries over all partitions, kept by every write
        self._expired_seen = 0  # sum of the partitions' expired_seen
        self._stats = CallStats()
        self._round: _Walk | None = None  # the sweeper's round in progress
        self._next_reclaim = -math.inf  # no reclaim for MAX_ENTRIES before this time
        # The running sweeper thread's token (see _sweep_forever), None if there is none.
        self._sweeper: object | None = None

    # ----------------------------------------------------------------------------- writes

    def publish(self, partition: str, connections: Iterable[Connection]) -> PublishResult:
        conns = list(connections)
        with self._lock:
            refused = self._refusal(partition, conns)
            if refused is None:
                self._store(partition, conns)
        if refused is not None:
            self._store_after_reclaim(partition, conns, refused)
        if self._sweeper is None and self.background_sweep:
            self.start_sweeper()
        return PublishResult(len(conns))

    def retract(self, partition: str, uids: Iterable[str]) -> RetractResult:
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                return RetractResult(False, ())
            missing: list[str] = []
            removed: dict[str, set[str]] = {}
            for uid in uids:
                entry = part.entries.pop(uid, None)
                if entry is None:
                    missing.append(uid)
                    continue
                self._entries -= 1
                removed.setdefault(entry.data_type, set()).add(uid)
                if entry.stamp <= part.seen_cutoff and part.expired_seen:
                    part.expired_seen -= 1  # the sweeper counted it expired; it is gone now
                    self._expired_seen -= 1
            part.reindex({}, removed)
            if not part.entries:
                self._drop(part)
            return RetractResult(True, tuple(missing))

    def retract_partition(self, partition: str) -> bool:
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                return False
            self._drop(part)
            return True

    def purge(self) -> int:
        """Remove every expired entry now, and the partitions that leaves empty. Walks the
        registry in chunks (module doc). Returns the number of entries removed."""
        with self._lock:
            walk = _Walk(list(self._parts.values()), 0.0)
        return self._run(walk)

    def reset(self) -> None:
        with self._lock:
            self._parts.clear()
            self._entries = self._expired_seen = 0
            self._round = None
            self._next_reclaim = -math.inf
            self._sweeper = None  # the thread ends at its next wake-up; a publish starts another

    # ----------------------------------------------------------------------------- sweeper

    def sweep_once(self, budget: int = SWEEP_PER_PASS) -> int:
        """One pass of the sweeper: carry the current round over all partitions on through up to
        ``budget`` entries, removing those expired for longer than the grace and the partitions
        that leaves empty or that are long expired whole. A pass ends where its round ends, so
        a small registry is swept whole by each pass. Returns the entries removed (also told to
        on_expired)."""
        with self._lock:
            if self._round is None or self._round.done:
                self._round = _Walk(list(self._parts.values()), self.grace)
            walk = self._round
        removed = self._run(walk, budget)
        if removed and self.on_expired is not None:
            self.on_expired(removed)
        return removed

    def start_sweeper(self) -> None:
        """Start the background thread that calls sweep_once every sweep_interval seconds, if
        none is running in this process. Publishes call it: before the first one there is
        nothing to sweep, and in a process forked from one that had a sweeper (Gunicorn's
        --preload) the first publish starts the child's own."""
        with self._lock:
            if self._sweeper is not None:
                return
            token = self._sweeper = object()
        _SWEEPING.add(self)
        # threading.Thread and time.sleep are looked up when called: under gevent's monkey
        # patching the sweeper is a greenlet whose sleep yields, under gthread a real thread.
        threading.Thread(
            target=_sweep_forever,
            args=(weakref.ref(self), token, self.sweep_interval),
            name="connection-flask-sweeper",
            daemon=True,
        ).start()

    def stop_sweeper(self) -> None:
        """Let the background thread end at its next wake-up."""
        self._sweeper = None

    @property
    def sweeping(self) -> bool:
        return self._sweeper is not None

    def _after_fork_in_child(self) -> None:
        # The parent's sweeper thread does not exist here, and a lock another parent thread
        # held at the fork would never be released.
        self._sweeper = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- reads

    def lookup(self, partition: str, matcher: Matcher, data_type: str) -> list[bytes] | None:
        """JSON of live entries matching, sorted by uid, in a new list the caller may change
        (the API edits it in place); None if the partition is unknown."""
        part = self._parts.get(partition)
        if part is None:
            return None
        cutoff = self.clock() - self.ttl
        entries = part.entries
        if matcher.literal is not None:
            e = entries.get(matcher.literal)
            if e is None or e.data_type != data_type or e.stamp <= cutoff:
                return []
            return [e.json]
        index = part.index.get(data_type)
        if index is None:
            return []
        rows, prefix = index.rows, matcher.prefix
        if prefix:
            uids = index.uids
            lo, hi = bisect.bisect_left(uids, prefix), _prefix_end(uids, prefix)
        else:
            lo, hi = 0, len(rows)
        if matcher.any_tail:
            plen, min_tail = len(prefix), matcher.min_tail
            if min_tail == 0 and not index.newline:
                if index.floor <= cutoff and hi - lo == len(rows):
                    # A whole-list answer: one pass over the stamps may show that all are live
                    # again, which then serves every lookup until the oldest stamp expires.
                    index.floor = min(map(_stamp, rows))
                if index.floor > cutoff:
                    return index.jsons[lo:hi]  # `prefix.*`: every row in range matches, all live
            rows = rows[lo:hi]
            if min_tail == 0:
                return [
                    e.json
                    for e in rows
                    if e.stamp > cutoff and ("\n" not in (u := e.uid) or "\n" not in u[plen:])
                ]
            return [
                e.json
                for e in rows
                if e.stamp > cutoff
                and len(u := e.uid) - plen >= min_tail
                and ("\n" not in u or "\n" not in u[plen:])
            ]
        fullmatch = matcher.regex.fullmatch
        return [e.json for e in rows[lo:hi] if e.stamp > cutoff and fullmatch(e.uid) is not None]

    def has_partition(self, partition: str) -> bool:
        return partition in self._parts

    def counts(self) -> tuple[int, int, int]:
        """(partitions, stored entries, live entries) for the gauges, in O(1). Live entries are
        stored entries less those the sweeper found expired (within the grace) on its last visit
        to their partition: publishes and retracts show at once, expiry within a sweep round."""
        with self._lock:
            stored = self._entries
            return len(self._parts), stored, min(stored, max(0, stored - self._expired_seen))

    def partition_sizes(self) -> list[tuple[str, int]]:
        """Every partition's name and number of entries, sorted by name: O(partitions)."""
        with self._lock:
            sizes = [(name, len(part.entries)) for name, part in self._parts.items()]
        sizes.sort()
        return sizes

    def page(
        self, partition: str, limit: int, *, after: str | None = None, prefix: str = ""
    ) -> tuple[list[EntryView], bool] | None:
        """The first ``limit`` entries of a partition in uid order, of those whose uid is after
        ``after`` and starts with ``prefix``, and whether more follow; None if the partition is
        unknown. Bisects each data_type's sorted index and merges their heads: O(data_types *
        log(entries) + limit), whatever the partition holds."""
        part = self._parts.get(partition)
        if part is None:
            return None
        with self._lock:  # the dict of indexes changes size as data_types come and go
            indexes = list(part.index.values())
        heads: list[list[Entry]] = []
        for i, index in enumerate(indexes, 1):
            uids = index.uids
            lo = bisect.bisect_left(uids, prefix) if prefix else 0
            if after is not None:
                lo = max(lo, bisect.bisect_right(uids, after))
            hi = min(_prefix_end(uids, prefix) if prefix else len(uids), lo + limit + 1)
            if lo < hi:
                heads.append(index.rows[lo:hi])
            if i % SWEEP_CHUNK == 0:
                time.sleep(0)  # a partition may hold as many data_types as entries
        rows = list(itertools.islice(heapq.merge(*heads, key=_uid), limit + 1))
        now = self.clock()
        views = [
            EntryView(
                e.uid,
                e.uri,
                e.data_type,
                e.connection_type,
                e.capacity,
                now - e.stamp,
                now - e.stamp >= self.ttl,
            )
            for e in rows[:limit]
        ]
        return views, len(rows) > limit

    # ----------------------------------------------------------------------------- stats

    def record_call(self, kind: str, seconds: float) -> None:
        with self._lock:
            if kind == "publish":
                self._stats.publishes += 1
                self._stats.publish_seconds += seconds
            else:
                self._stats.lookups += 1
                self._stats.lookup_seconds += seconds

    def stats(self, *, reset: bool = False) -> CallStats:
        """The statistics, a copy its reader may iterate while publishes go on."""
        with self._lock:
            current = self._stats
            if reset:
                self._stats = CallStats()
            return replace(current, max_entries=dict(current.max_entries))

    # ----------------------------------------------------------------------------- publish

    def _refusal(self, partition: str, conns: list[Connection]) -> LimitExceeded | None:
        """The limit storing ``conns`` would break, if any. Called with the lock held."""
        part = self._parts.get(partition)
        if part is None:
            if self.max_partitions and len(self._parts) >= self.max_partitions:
                return LimitExceeded(
                    MAX_PARTITIONS,
                    self.max_partitions,
                    f"the registry already holds {len(self._parts)} partitions "
                    f"({MAX_PARTITIONS}={self.max_partitions})",
                )
            entries = _NO_ENTRIES
        else:
            entries = part.entries
        # Counting the new uids costs a set per publish; skip it while even "all new" fits.
        might_overflow = (
            self.max_entries_per_partition
            and len(entries) + len(conns) > self.max_entries_per_partition
        ) or (self.max_entries and self._entries + len(conns) > self.max_entries)
        if not might_overflow:
            return None
        fresh = len({c.uid for c in conns if c.uid not in entries})
        if self.max_entries_per_partition and len(entries) + fresh > self.max_entries_per_partition:
            return LimitExceeded(
                MAX_ENTRIES_PER_PARTITION,
                self.max_entries_per_partition,
                f"partition would hold {len(entries) + fresh} entries "
                f"({MAX_ENTRIES_PER_PARTITION}={self.max_entries_per_partition})",
            )
        if self.max_entries and self._entries + fresh > self.max_entries:
            return LimitExceeded(
                MAX_ENTRIES,
                self.max_entries,
                f"the registry would hold {self._entries + fresh} entries "
                f"({MAX_ENTRIES}={self.max_entries})",
            )
        return None

    def _store(self, partition: str, conns: list[Connection]) -> None:
        """Store a publish the limits allow. Called with the lock held."""
        now = self.clock()
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition(partition, now)
        part.newest = now
        entries = part.entries
        added: dict[str, set[str]] = {}
        removed: dict[str, set[str]] = {}
        replaced: set[str] = set()
        for c in conns:
            old = entries.get(c.uid)
            if old is not None and old.connection == c:
                old.stamp = now
                continue
            entries[c.uid] = Entry(c, now)
            if old is None:
                self._entries += 1
            if old is None or old.data_type != c.data_type:
                added.setdefault(c.data_type, set()).add(c.uid)
                if old is not None:
                    removed.setdefault(old.data_type, set()).add(c.uid)
                    # The same uid earlier in this publish with old's data_type: it must
                    # not be indexed there after all.
                    added.get(old.data_type, set()).discard(c.uid)
            else:
                replaced.add(c.data_type)
        if added or removed or replaced:
            part.reindex(added, removed, replaced)
        self._note_sizes(part)

    def _store_after_reclaim(
        self, partition: str, conns: list[Connection], refused: LimitExceeded
    ) -> None:
        """A publish refused by a limit: reclaim what expired past the grace for that limit,
        then check again, once per limit in the way; raise the refusal if one still stands."""
        tried: set[str] = set()
        while refused.setting not in tried:
            tried.add(refused.setting)
            self._reclaim(refused.setting, partition)
            with self._lock:
                again = self._refusal(partition, conns)
                if again is None:
                    self._store(partition, conns)
                    return
            refused = again
        raise refused

    def _reclaim(self, setting: str, partition: str) -> None:
        """Remove what expired past the grace and stands in the way of ``setting``. Whole
        partitions cost O(1) each and are always reclaimed; walking entries is done at most
        once per sweep interval (per partition for MAX_ENTRIES_PER_PARTITION), so a client
        held at a limit cannot make every publish walk the registry."""
        with self._lock:
            now = self.clock()
            if setting == MAX_PARTITIONS:
                walk = _Walk(list(self._parts.values()), self.grace, entries=False)
            elif setting == MAX_ENTRIES_PER_PARTITION:
                part = self._parts.get(partition)
                if part is None or now < part.next_reclaim:
                    return
                part.next_reclaim = now + self.sweep_interval
                walk = _Walk([part], self.grace)
            else:
                if now < self._next_reclaim:
                    return
                self._next_reclaim = now + self.sweep_interval
                walk = _Walk(list(self._parts.values()), self.grace)
        removed = self._run(walk)
        if removed and self.on_expired is not None:
            self.on_expired(removed)

    # ----------------------------------------------------------------------------- walks

    def _run(self, walk: _Walk, budget: float = math.inf) -> int:
        """Take ``walk`` to its end, or through ``budget`` entries, a chunk per hold of the lock,
        yielding between chunks (module doc). Returns the entries removed."""
        removed = 0
        while True:
            with self._lock:
                gone, used = self._step(walk, int(min(budget, SWEEP_CHUNK)))
            removed += gone
            budget -= used
            if walk.done or budget <= 0:
                return removed
            time.sleep(0)

    def _step(self, walk: _Walk, budget: int) -> tuple[int, int]:
        """Advance ``walk`` by up to ``budget`` entries or partitions. Called with the lock
        held. Returns (entries removed, entries and partitions looked at)."""
        live = self.clock() - self.ttl
        cutoff = live - walk.grace
        removed = used = 0
        while used < budget:
            part = walk.part
            if part is None:
                if not walk.todo:
                    walk.done = True
                    break
                part = walk.todo.pop()
                used += 1
                if self._parts.get(part.name) is not part:
                    continue  # gone, or gone and published anew, since the walk began
                if part.newest <= cutoff:
                    removed += self._drop(part)
                elif walk.entries:
                    walk.begin(part, live)
                continue
            if self._parts.get(part.name) is not part:
                walk.part = None  # retracted, reset or dropped between two chunks
                continue
            if walk.lists:
                used += walk.look(part.entries, budget - used, cutoff, live)
            if not walk.lists:
                removed += self._finish(walk, part, cutoff)
        return removed, used

    def _finish(self, walk: _Walk, part: _Partition, cutoff: float) -> int:
        """End a walk's visit to a partition: remove the long-expired entries it found (unless
        republished since), note what it saw expired, and drop the partition if that emptied it.
        Called with the lock held."""
        walk.part = None
        entries = part.entries
        gone = [e for e in walk.gone if entries.get(e.uid) is e and e.stamp <= cutoff]
        self._expired_seen += walk.expired - part.expired_seen
        part.expired_seen, part.seen_cutoff = walk.expired, walk.seen_cutoff
        if not gone:
            return 0
        removed = self._remove(part, gone)
        if not entries:
            self._drop(part)
        return removed

    # ----------------------------------------------------------------------------- internals

    def _note_sizes(self, part: _Partition) -> None:
        stats = self._stats
        stats.max_partitions = max(stats.max_partitions, len(self._parts))
        peaks = stats.max_entries
        if len(part.entries) > peaks.get(part.name, 0):
            # One line per partition ever seen would grow without bound as partitions come and
            # go: past twice the live count, forget the peaks of partitions that are gone.
            if part.name not in peaks and len(peaks) >= 2 * len(self._parts) + 64:
                for name in [n for n in peaks if n not in self._parts]:
                    del peaks[name]
            peaks[part.name] = len(part.entries)

    def _remove(self, part: _Partition, gone: list[Entry]) -> int:
        removed: dict[str, set[str]] = {}
        for e in gone:
            del part.entries[e.uid]
            self._entries -= 1
            removed.setdefault(e.data_type, set()).add(e.uid)
        part.reindex({}, removed)
        return len(gone)

    def _drop(self, part: _Partition) -> int:
        """Remove a partition whole; returns the entries it held. Called with the lock held."""
        del self._parts[part.name]
        self._entries -= len(part.entries)
        self._expired_seen -= part.expired_seen
        return len(part.entries)


# Read by _refusal for a partition not created yet; never written.
_NO_ENTRIES: dict[str, Entry] = {}

# Registries that started a sweeper, so a forked child can forget the thread it did not inherit.
_SWEEPING: weakref.WeakSet[Registry] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for registry in list(_SWEEPING):
        registry._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _sweep_forever(ref: weakref.ref[Registry], token: object, interval: float) -> None:
    """The sweeper thread: a pass every ``interval`` seconds while its registry lives and still
    wants this thread (``token``). It holds the registry only during a pass, so a registry that
    is dropped, reset or stopped ends it at the next wake-up."""
    while True:
        time.sleep(interval)
        registry = ref()
        if registry is None or registry._sweeper is not token:
            return
        try:
            registry.sweep_once()
        except Exception:
            log.exception("sweeper pass failed; the next one is in %.1f s", interval)
        del registry


_uid = operator.attrgetter("uid")
_stamp = operator.attrgetter("stamp")


def _prefix_end(uids: list[str], prefix: str) -> int:
    """Index just past the last uid starting with prefix in a sorted list."""
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        return bisect.bisect_left(uids, prefix[:-1] + chr(last + 1))
    i = bisect.bisect_left(uids, prefix)
    while i < len(uids) and uids[i].startswith(prefix):
        i += 1
    return i
