"""The Redis store: the registry shared by every worker and replica that names one Redis.

It answers as MemoryStore does (same values, same JSON bytes, same uid order, same limits and
messages, same change indexes); the data layout and the clock are in redis_common.lua. Each
operation is one script, so one round trip: lookups range a lexicographic index per (partition,
data_type), O(log N + matches) for literal and prefix patterns, and a general regex reads that
one index and is matched here with RE2 (an answer of more than LOOKUP_CHUNK entries takes a call
per chunk). Entry times come from Redis's TIME, so replicas with skewed clocks agree on what has
expired (a test injects its own clock, whose reading is then sent instead). Changes are
announced on a pub/sub channel, so watches wake in every process (redis_changes.py).

Faults: any Redis error or timeout raises StoreUnavailable (answered 503) within the socket
timeout; redis-py reconnects by itself when Redis is back. One client per process
(redis_scripts.RedisLink).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from connection_flask.matching import Matcher
from connection_flask.store.entries import encode
from connection_flask.store.errors import StoreUnavailable
from connection_flask.store.expiry import SWEEP_CHUNK, SWEEP_PER_PASS
from connection_flask.store.limits import (
    MAX_ENTRIES,
    MAX_ENTRIES_PER_PARTITION,
    MAX_PARTITIONS,
    NO_LIMITS,
    Limits,
)
from connection_flask.store.redis_calls import Background, PendingCalls, call_stats
from connection_flask.store.redis_changes import ChangeListener
from connection_flask.store.redis_scripts import RedisLink, lookup_range, member_head, page_views
from connection_flask.store.stats import CallStats
from connection_flask.store.values import PartitionCount, PublishResult, RetractResult

if TYPE_CHECKING:  # in annotations only
    from connection_flask.store.values import Clock, Connection, EntryView

# Index members one lookup script reads at most: about 5 ms of Redis's time (a script holds
# Redis whole while it runs); a bigger answer takes several calls.
LOOKUP_CHUNK = 2_000
# The publish script's refusal codes.
REFUSED = {1: MAX_PARTITIONS, 2: MAX_ENTRIES_PER_PARTITION, 3: MAX_ENTRIES}


def _never() -> bool:
    return False


class RedisStore:
    def __init__(
        self,
        url: str,
        ttl: float,
        grace: float,
        *,
        prefix: str = "connection-flask",
        timeout: float = 0.2,
        clock: Clock | None = None,
        limits: Limits = NO_LIMITS,
        sweep_interval: float = 1.0,
        background_sweep: bool = False,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        # None: Redis's TIME stamps entries. A clock: its readings do (tests move time by hand).
        self.redis = RedisLink(url, prefix, timeout, clock)
        self.name = self.redis.name
        self._run, self._command = self.redis.run, self.redis.command
        self.ttl = ttl
        self.grace = grace
        self.prefix = prefix
        self.timeout = timeout
        self.clock = clock
        self.limits = limits
        self.sweep_interval = sweep_interval
        self.background_sweep = background_sweep
        self.on_expired = on_expired
        self._calls = PendingCalls()
        self._cursor = "0"  # where the sweeper's round over the partitions stands
        self._background = Background(self)
        self._changes = ChangeListener(self.client, f"{prefix}:changes", sweep_interval)

    # ----------------------------------------------------------------------------- Redis

    def client(self) -> Any:
        """This process's client of Redis (redis_scripts.RedisLink)."""
        return self.redis.client()

    def close(self) -> None:
        """Stop the sweeper and the change listener, and close this process's connections."""
        self.stop_sweeper()
        self._changes.stop()
        self.redis.close()

    def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers within the timeout."""
        self._command("ping")

    # ----------------------------------------------------------------------------- writes

    def publish(self, partition: str, connections: Iterable[Connection]) -> PublishResult:
        conns = list(connections)
        limits = self.limits
        args: list[object] = [
            partition,
            limits.partitions,
            limits.entries_per_partition,
            limits.entries,
            self.ttl,
        ]
        for c in conns:
            args += (c.uid, c.data_type, encode(c))
        tried: set[str] = set()
        while (reply := self._run("publish", *args))[0]:
            refused = limits.exceeded(REFUSED[reply[0]], int(reply[1]))
            if refused.setting in tried:
                raise refused
            # Reclaim what expired past the grace for that limit, then try again, once per limit.
            tried.add(refused.setting)
            self._report(self._reclaim(refused.setting, partition))
        if self.background_sweep and not self.sweeping:
            self.start_sweeper()
        return PublishResult(len(conns))

    def retract(self, partition: str, uids: Iterable[str]) -> RetractResult:
        missing = self._run("retract", partition, "0", *uids)
        if missing is None:
            return RetractResult(False, ())
        return RetractResult(True, tuple(uid.decode() for uid in missing))

    def retract_partition(self, partition: str) -> bool:
        return self._run("retract", partition, "1") is not None

    def purge(self) -> int:
        """Remove every expired entry now, and the partitions that leaves empty."""
        return self._walk(0.0)[0]

    def reset(self) -> None:
        self._run("read", "reset")
        self._cursor = "0"
        self.stop_sweeper()  # a publish starts another

    def _reclaim(self, setting: str, partition: str) -> int:
        """Remove what expired past the grace and stands in the way of limit ``setting``:
        whole partitions always, entries at most once per sweep interval (MemoryStore's rule)."""
        if setting == MAX_PARTITIONS:
            return self._walk(self.grace, entries=False)[0]
        only = partition if setting == MAX_ENTRIES_PER_PARTITION else ""
        return self._walk(self.grace, only=only, every=self.sweep_interval)[0]

    def _walk(
        self,
        grace: float,
        *,
        cursor: str = "0",
        budget: float = math.inf,
        entries: bool = True,
        only: str = "",
        every: float = 0.0,
    ) -> tuple[int, str]:
        """Remove what expired more than ``grace`` ago, a chunk per script, yielding between
        chunks (a script holds Redis for as long as it runs). Returns the entries removed and
        where the walk stands ("0": done)."""
        removed = 0
        while True:
            chunk = int(min(budget, SWEEP_CHUNK))
            gone, cursor_b, done, used = self._run(
                "sweep", self.ttl, grace, chunk, cursor, int(entries), only, every
            )
            every = 0.0  # the rule is for starting a walk; its next chunks go on
            removed += gone
            budget -= used
            cursor = "0" if done else cursor_b.decode()
            if done or budget <= 0:
                return removed, cursor
            time.sleep(0)

    # ----------------------------------------------------------------------------- expiry

    def sweep_once(self, budget: int = SWEEP_PER_PASS) -> int:
        """Carry the round over all partitions on through up to ``budget`` entries, removing
        those expired past the grace; a small store is swept whole by each pass."""
        removed, self._cursor = self._walk(self.grace, cursor=self._cursor, budget=budget)
        return self._report(removed)

    def background_pass(self) -> int:
        """What the sweeper thread does each interval: send this process's call counts, and
        sweep unless another process holds the pass (a lease in Redis: one pass per interval
        whatever the number of workers and replicas)."""
        self._flush_calls()
        lease = self._command(
            "set",
            f"{self.prefix}:sweeping",
            os.getpid(),
            nx=True,
            px=int(self.sweep_interval * 1000),
        )
        return self.sweep_once() if lease else 0

    def start_sweeper(self) -> None:
        self._background.start(self.sweep_interval)

    def stop_sweeper(self) -> None:
        self._background.stop()

    @property
    def sweeping(self) -> bool:
        return self._background.sweeper is not None

    def after_fork_in_child(self) -> None:
        self.redis.after_fork_in_child()
        self._calls.after_fork_in_child()
        self._changes.after_fork_in_child()

    def _report(self, removed: int) -> int:
        if removed and self.on_expired is not None:
            self.on_expired(removed)
        return removed

    # ----------------------------------------------------------------------------- reads

    def lookup(self, partition: str, matcher: Matcher, data_type: str) -> list[bytes] | None:
        head = member_head(data_type)
        low, high = lookup_range(head, matcher.literal, matcher.prefix)
        # The script applies TTL and the `prefix.*` tail rule; any other pattern is matched
        # here, on the uids it sends along.
        plain = matcher.literal is not None or matcher.any_tail
        min_tail = matcher.min_tail if matcher.any_tail else -1
        rules = (len(head), min_tail, len(matcher.prefix.encode()), int(not plain), LOOKUP_CHUNK)
        found: list[bytes] = []
        while True:
            reply = self._run("lookup", partition, self.ttl, low, high, *rules)
            if reply is None:  # unknown, or retracted between two chunks of a big answer
                return found or None
            found += reply[1:]
            if not reply[0]:
                break
            low = b"(" + reply[0]
        if plain:
            return found
        fullmatch = matcher.regex.fullmatch
        return [
            found[i + 1]
            for i in range(0, len(found), 2)
            if fullmatch(found[i].decode()) is not None
        ]

    def has_partition(self, partition: str) -> bool:
        return self._command("zscore", f"{self.prefix}:parts", partition) is not None

    def counts(self) -> tuple[int, int, int]:
        """(partitions, stored entries, live entries): O(partitions), exact."""
        partitions, stored, live = self._run("read", "counts", self.ttl)
        return partitions, stored, live

    def partition_sizes(self) -> list[tuple[str, int]]:
        flat = self._run("read", "sizes")
        return sorted((flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2))

    def page(
        self, partition: str, limit: int, *, after: str | None = None, prefix: str = ""
    ) -> tuple[list[EntryView], bool] | None:
        """As MemoryStore.page: each data_type's first entries in range, merged here by uid
        (bytes of UTF-8 sort as the text's code points do)."""
        low = "(" + after if after is not None and after >= prefix else "[" + prefix
        reply = self._run("page", partition, limit + 1, low, prefix)
        return None if reply is None else page_views(reply, limit, self.ttl)

    def partition_counts(self) -> tuple[list[PartitionCount], int]:
        """Every partition's live and expired entries (exact: by the clock, not by the
        sweeper's last visit), sorted by name, and the store's change index."""
        flat = self._run("read", "partitions", self.ttl)
        rows = [
            PartitionCount(flat[i].decode(), flat[i + 1], flat[i + 2])
            for i in range(1, len(flat), 3)
        ]
        rows.sort()
        return rows, int(flat[0])

    # ----------------------------------------------------------------------------- changes

    def index(self, partition: str | None = None) -> int:
        """The change index of ``partition``, or of the whole store (changes.py)."""
        return int(self._run("read", "index", "" if partition is None else partition))

    def wait_change(
        self, partition: str, index: int, timeout: float, stop: Callable[[], bool] = _never
    ) -> int | None:
        self._changes.ensure(min(timeout, self.timeout * 5))
        return self._changes.notifier.wait(partition, self.index, index, timeout, stop=stop)

    def wake_waiters(self) -> None:
        self._changes.notifier.wake_all()

    # ----------------------------------------------------------------------------- stats

    def record_call(self, kind: str, seconds: float) -> None:
        if self._calls.add(kind, seconds):
            with contextlib.suppress(StoreUnavailable):  # kept, and sent with a later call
                self._flush_calls()

    def stats(self, *, reset: bool = False) -> CallStats:
        return call_stats(*self._flush_calls("reset" if reset else "read"))

    def _flush_calls(self, then: str = "add") -> Any:
        deltas = self._calls.take()
        try:
            return self._run("stats", *deltas, then)
        except StoreUnavailable:
            self._calls.give_back(deltas)
            raise
