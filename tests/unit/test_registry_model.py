"""The registry against a plain reference model, driven by a hypothesis state machine.

The model is dicts of dicts and a fake clock. The registry's freedoms are *when* it reclaims
state that is long expired (expired for longer than the grace period): its sweep and the
reclaim a publish at a limit does may drop such entries, the partitions that leaves empty, and
partitions nothing was published to for that long. So before each step the model forgets
exactly the long-expired state the registry no longer holds (and fails if the registry dropped
anything else). Every other difference is a bug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from connection_flask.matching import compile_matcher
from connection_flask.registry import Connection, EntryView, LimitExceeded, Limits, Registry
from tests.helpers import FakeClock

TTL, GRACE = 10.0, 5.0
MAX_PARTITIONS, MAX_PER_PARTITION, MAX_TOTAL = 3, 4, 7

partitions = st.sampled_from(["p", "q", "r", "s"])
uids = st.sampled_from(["a", "b", "ab", "ba", "abc", "c", "a\nb", "\u00e9", "a.b"])
data_types = st.sampled_from(["T", "U"])
connections = st.builds(
    Connection,
    uid=uids,
    uri=st.sampled_from(["tcp://1", "tcp://2"]),
    data_type=data_types,
    connection_type=st.integers(0, 1),
    capacity=st.integers(0, 2),
)
patterns = st.sampled_from([".*", "a.*", "a", "ab", "b.+", "[ab]c?", "(a|b)*", "a.b", "\u00e9|c"])


@dataclass
class ModelEntry:
    c: Connection
    stamp: float


@dataclass
class ModelPartition:
    newest: float  # the last publish, even of nothing
    entries: dict[str, ModelEntry] = field(default_factory=dict)


def held(registry: Registry) -> dict[str, list[EntryView]]:
    """Everything the registry holds, read through the dump page's paging."""
    out = {}
    for name, _ in registry.partition_sizes():
        page = registry.page(name, 1000)
        assert page is not None and not page[1]
        out[name] = page[0]
    return out


class RegistryVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.registry = Registry(
            TTL,
            GRACE,
            clock=self.clock,
            limits=Limits(
                partitions=MAX_PARTITIONS,
                entries_per_partition=MAX_PER_PARTITION,
                entries=MAX_TOTAL,
            ),
        )
        self.model: dict[str, ModelPartition] = {}

    # ------------------------------------------------------------------ model helpers

    def live(self, e: ModelEntry) -> bool:
        return e.stamp > self.clock() - TTL

    def long_expired(self, stamp: float) -> bool:
        return stamp <= self.clock() - TTL - GRACE

    def reconcile(self, *, emptied_must_go: bool = True) -> None:
        """Forget long-expired state the registry already reclaimed; nothing else may be gone.
        A partition the registry emptied must be gone too, unless a publish since (the one that
        reclaimed, with ``emptied_must_go=False``) created it anew."""
        holds = held(self.registry)
        for name, part in list(self.model.items()):
            views = holds.get(name)
            if views is None:
                assert self.long_expired(part.newest) or (
                    part.entries and all(self.long_expired(e.stamp) for e in part.entries.values())
                ), f"partition {name} lost early"
                del self.model[name]
                continue
            kept = {v.uid for v in views}
            forgot = False
            for uid in list(part.entries):
                if uid not in kept:
                    assert self.long_expired(part.entries[uid].stamp), f"{name}/{uid} lost early"
                    del part.entries[uid]
                    forgot = True
            if emptied_must_go:
                assert not (forgot and not part.entries), f"partition {name} emptied but kept"

    @staticmethod
    def over(model: dict[str, ModelPartition], partition: str, conns: list[Connection]) -> bool:
        part = model.get(partition)
        entries = part.entries if part else {}
        fresh = len({c.uid for c in conns} - set(entries))
        total = sum(len(p.entries) for p in model.values())
        return (
            (part is None and len(model) >= MAX_PARTITIONS)
            or len(entries) + fresh > MAX_PER_PARTITION
            or total + fresh > MAX_TOTAL
        )

    def without_dead_partitions(self) -> dict[str, ModelPartition]:
        return {n: p for n, p in self.model.items() if not self.long_expired(p.newest)}

    def without_long_expired(self) -> dict[str, ModelPartition]:
        out = {}
        for name, part in self.without_dead_partitions().items():
            entries = {u: e for u, e in part.entries.items() if not self.long_expired(e.stamp)}
            if entries or not part.entries:
                out[name] = ModelPartition(part.newest, entries)
        return out

    # ------------------------------------------------------------------ rules

    @rule(seconds=st.sampled_from([0.0, 0.5, 3.0, 9.9, 10.0, 15.0, 40.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(partition=partitions, conns=st.lists(connections, max_size=5))
    def publish(self, partition: str, conns: list[Connection]) -> None:
        self.reconcile()
        must_accept = not self.over(self.model, partition, conns)
        must_refuse = self.over(self.without_long_expired(), partition, conns)
        # Long-dead partitions are reclaimed whenever MAX_PARTITIONS is in the way.
        if partition not in self.model and len(self.model) >= MAX_PARTITIONS:
            must_accept = must_accept or not self.over(
                self.without_dead_partitions(), partition, conns
            )
        try:
            self.registry.publish(partition, conns)
        except LimitExceeded:
            assert not must_accept, "refused a publish within the limits"
            return
        assert not must_refuse, "accepted a publish past a limit"
        self.reconcile(emptied_must_go=False)  # what the publish reclaimed to make room
        part = self.model.setdefault(partition, ModelPartition(self.clock()))
        part.newest = self.clock()
        for c in conns:
            part.entries[c.uid] = ModelEntry(c, self.clock())

    @rule(partition=partitions, gone=st.lists(uids, max_size=4))
    def retract(self, partition: str, gone: list[str]) -> None:
        self.reconcile()
        result = self.registry.retract(partition, gone)
        part = self.model.get(partition)
        assert result.partition_found == (part is not None)
        if part is None:
            return
        missing = []
        for uid in gone:
            if part.entries.pop(uid, None) is None:
                missing.append(uid)
        assert list(result.missing) == missing
        if not part.entries:
            del self.model[partition]

    @rule(partition=partitions)
    def retract_partition(self, partition: str) -> None:
        self.reconcile()
        assert self.registry.retract_partition(partition) == (
            self.model.pop(partition, None) is not None
        )

    @rule()
    def purge(self) -> None:
        self.reconcile()
        expected = 0
        for name, part in list(self.model.items()):
            expired = [u for u, e in part.entries.items() if not self.live(e)]
            for uid in expired:
                del part.entries[uid]
            expected += len(expired)
            if part.newest <= self.clock() - TTL or (expired and not part.entries):
                del self.model[name]
        assert self.registry.purge() == expected

    @rule()
    def sweep(self) -> None:
        self.registry.sweep_once()
        self.reconcile()
        # A pass covers a registry this small whole: nothing long expired is left, and the
        # live count is exact.
        for part in self.model.values():
            assert not self.long_expired(part.newest)
            assert not any(self.long_expired(e.stamp) for e in part.entries.values())
        live = sum(self.live(e) for p in self.model.values() for e in p.entries.values())
        assert self.registry.counts()[2] == live

    @precondition(lambda self: self.model)
    @rule()
    def reset(self) -> None:
        self.registry.reset()
        self.model.clear()

    @rule(partition=partitions, pattern=patterns, data_type=data_types)
    def lookup(self, partition: str, pattern: str, data_type: str) -> None:
        self.reconcile()
        found = self.registry.lookup(partition, compile_matcher(pattern), data_type)
        part = self.model.get(partition)
        if part is None:
            assert found is None
            return
        expected = [
            e.c.uid
            for uid, e in sorted(part.entries.items())
            if self.live(e) and e.c.data_type == data_type and re.fullmatch(pattern, uid)
        ]
        assert found is not None
        assert [_uid(j) for j in found] == expected

    # ------------------------------------------------------------------ invariants

    @invariant()
    def same_contents(self) -> None:
        self.reconcile()
        holds = held(self.registry)
        assert sorted(holds) == sorted(self.model)
        for name, views in holds.items():
            entries = self.model[name].entries
            assert [v.uid for v in views] == sorted(entries)
            for v in views:
                e = entries[v.uid]
                assert (v.uri, v.data_type, v.connection_type, v.capacity) == (
                    e.c.uri,
                    e.c.data_type,
                    e.c.connection_type,
                    e.c.capacity,
                )
                assert v.expired == (not self.live(e))

    @invariant()
    def counts_agree(self) -> None:
        self.reconcile()
        partitions_held, stored, live = self.registry.counts()
        assert partitions_held == len(self.model)
        assert stored == sum(len(p.entries) for p in self.model.values())
        assert 0 <= live <= stored
        assert stored <= MAX_TOTAL
        assert partitions_held <= MAX_PARTITIONS


def _uid(encoded: bytes) -> str:
    import orjson

    value = orjson.loads(encoded)
    assert isinstance(value, dict)
    return str(value["uid"])


RegistryVersusModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRegistryAgreesWithReferenceModel = RegistryVersusModel.TestCase


def test_uid_published_twice_in_one_request_with_two_data_types_is_found_only_under_the_last() -> (
    None
):
    # Found by the state machine above: the first data_type's index kept the uid.
    registry = Registry(TTL, GRACE, clock=FakeClock())
    registry.publish("p", [Connection("a", "u", "U", 0), Connection("a", "u", "T", 0)])
    assert registry.lookup("p", compile_matcher(".*"), "U") == []
    assert [_uid(j) for j in registry.lookup("p", compile_matcher(".*"), "T") or []] == ["a"]
