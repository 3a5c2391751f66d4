"""Removing what expired past the purge grace: walks in bounded steps, which walk a reclaim at a
limit takes, and the background sweeper thread.

An entry is invisible ENTRY_TTL after its last publish; the sweeper (a bounded pass every
``sweep_interval`` seconds, round-robin over the partitions) removes it once the purge grace has
passed too; a purge removes every expired entry at once. A partition goes when a write removes
its last entry, or when nothing has been published to it for longer than ENTRY_TTL plus the
grace (all of it is long expired then, and it is dropped whole in O(1)). A publish that would
break a limit first reclaims what expired past the grace, then checks again, so a full store
recovers by itself.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from typing import Protocol

from connection_flask.store.entries import Entry
from connection_flask.store.limits import MAX_ENTRIES_PER_PARTITION, MAX_PARTITIONS
from connection_flask.store.partition import Partition, Partitions

log = logging.getLogger("connection_flask")

# Entries (or partitions) looked at per hold of the lock: about 0.1 ms of work, so that is about
# how long a publish waits behind a sweep, a purge or a reclaim. gevent polls for I/O only every
# 50 yields (or 5 ms): chunks much longer would hold a waiting lookup up to 50 chunks per step.
SWEEP_CHUNK = 1_000
# Entries one pass of the background sweeper looks at: a round over a million entries takes 20
# passes, and a pass costs a few ms of CPU.
SWEEP_PER_PASS = 50_000


class Walk:
    """A walk over some partitions in bounded steps that removes what expired more than
    ``grace`` ago: where it stands between two steps.

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
        "newly_expired",
        "part",
        "pos",
        "seen_cutoff",
        "todo",
    )

    def __init__(self, parts: list[Partition], grace: float, *, entries: bool = True) -> None:
        self.todo = parts
        self.grace = grace
        # False: only drop partitions that are long expired as a whole, O(partitions), which is
        # all MAX_PARTITIONS needs.
        self.entries = entries
        self.done = False
        self.part: Partition | None = None
        self.lists: list[list[str]] = []
        self.pos = 0
        self.gone: list[Entry] = []
        self.expired = 0
        self.seen_cutoff = -math.inf
        # Whether the visit found an entry that expired since the last visit's seen_cutoff: a
        # change of content (changes.py), which raises the partition's change index.
        self.newly_expired = False

    def step(self, parts: Partitions, live: float, budget: int) -> tuple[int, int]:
        """Advance by up to ``budget`` entries or partitions; entries stamped after ``live`` are
        live. Called with the store's lock held. Returns (entries removed, entries and
        partitions looked at)."""
        cutoff = live - self.grace
        removed = used = 0
        while used < budget:
            part = self.part
            if part is None:
                if not self.todo:
                    self.done = True
                    break
                part = self.todo.pop()
                used += 1
                if not parts.holds(part):
                    continue  # gone, or gone and published anew, since the walk began
                if part.newest <= cutoff:
                    removed += parts.drop(part)
                elif self.entries:
                    self._begin(part, live)
                continue
            if not parts.holds(part):
                self.part = None  # retracted, reset or dropped between two chunks
                continue
            if self.lists:
                used += self._look(part, budget - used, cutoff, live)
            if not self.lists:
                removed += self._finish(parts, part, cutoff)
        return removed, used

    def _begin(self, part: Partition, live: float) -> None:
        self.part = part
        self.lists = [index.uids for index in part.index.values()]
        self.pos = 0
        self.gone = []
        self.expired = 0
        self.newly_expired = False
        self.seen_cutoff = live

    def _look(self, part: Partition, budget: int, cutoff: float, live: float) -> int:
        """Look at up to ``budget`` uids of the current list; returns how many it looked at."""
        entries, since = part.entries, part.seen_cutoff  # the last visit's cutoff
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
                    if stamp > since:
                        self.newly_expired = True
        if end == len(uids):
            self.lists.pop()
            self.pos = 0
        else:
            self.pos = end
        return end - start

    def _finish(self, parts: Partitions, part: Partition, cutoff: float) -> int:
        """End the visit to a partition: remove the long-expired entries found (unless
        republished since), note what was seen expired, and drop the partition if emptied."""
        self.part = None
        entries = part.entries
        gone = [e for e in self.gone if entries.get(e.uid) is e and e.stamp <= cutoff]
        parts.expired_seen += self.expired - part.expired_seen
        part.expired_seen, part.seen_cutoff = self.expired, self.seen_cutoff
        if gone:
            return parts.remove(part, gone)  # a change (or the partition's end) of its own
        if self.newly_expired:
            parts.changed(part)
        return 0


def reclaim_walk(
    parts: Partitions, setting: str, partition: str, now: float, *, grace: float, interval: float
) -> Walk | None:
    """The walk that removes what expired past ``grace`` and stands in the way of limit
    ``setting``, or None if none is due. Whole partitions cost O(1) each and are always
    reclaimed; entries are walked at most once per ``interval`` (per partition for
    MAX_ENTRIES_PER_PARTITION), so a client held at a limit cannot make every publish walk
    the store. Called with the store's lock held."""
    if setting == MAX_PARTITIONS:
        return Walk(list(parts.by_name.values()), grace, entries=False)
    if setting == MAX_ENTRIES_PER_PARTITION:
        part = parts.by_name.get(partition)
        if part is None or now < part.next_reclaim:
            return None
        part.next_reclaim = now + interval
        return Walk([part], grace)
    if now < parts.next_reclaim:
        return None
    parts.next_reclaim = now + interval
    return Walk(list(parts.by_name.values()), grace)


# ----------------------------------------------------------------------------- the sweeper


class Swept(Protocol):
    """What the sweeper thread needs of its store."""

    def sweep_once(self) -> int: ...

    def after_fork_in_child(self) -> None: ...


# Stores that started a sweeper, so a forked child can forget the thread it did not inherit.
_SWEEPING: weakref.WeakSet[Swept] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_SWEEPING):
        store.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Sweeper:
    """The handle of one background thread that calls ``sweep_once`` every ``interval``
    seconds. The thread holds its store only during a pass, so a store that is dropped or that
    stops the sweeper ends it at the next wake-up."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False

    def start(self, store: Swept, interval: float) -> None:
        _SWEEPING.add(store)
        # threading.Thread and time.sleep are looked up when called: under gevent's monkey
        # patching the sweeper is a greenlet whose sleep yields, under gthread a real thread.
        threading.Thread(
            target=self._run,
            args=(weakref.ref(store), interval),
            name="connection-flask-sweeper",
            daemon=True,
        ).start()

    def stop(self) -> None:
        self.stopped = True

    def _run(self, ref: weakref.ref[Swept], interval: float) -> None:
        while True:
            time.sleep(interval)
            store = ref()
            if store is None or self.stopped:
                return
            try:
                store.sweep_once()
            except Exception:
                log.exception("sweeper pass failed; the next one is in %.1f s", interval)
            del store
