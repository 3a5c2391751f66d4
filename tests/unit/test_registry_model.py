"""The registry against a plain reference model, driven by a hypothesis state machine.

The model is dicts of dicts and a fake clock. The one freedom the registry has is *when* its
background sweep drops an entry that has been expired for longer than the grace period; so
before each step the model forgets exactly those long-expired entries the registry no longer
holds (and fails if the registry dropped anything else). Every other difference is a bug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from connection_flask.matching import compile_matcher
from connection_flask.registry import Connection, LimitExceeded, Registry
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


class RegistryVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.registry = Registry(
            TTL,
            GRACE,
            clock=self.clock,
            max_partitions=MAX_PARTITIONS,
            max_entries_per_partition=MAX_PER_PARTITION,
            max_entries=MAX_TOTAL,
        )
        self.model: dict[str, dict[str, ModelEntry]] = {}

    # ------------------------------------------------------------------ model helpers

    def total(self) -> int:
        return sum(len(p) for p in self.model.values())

    def live(self, e: ModelEntry) -> bool:
        return e.stamp > self.clock() - TTL

    def reconcile(self) -> None:
        """Forget long-expired entries the sweep already removed; nothing else may be gone."""
        held = {name: {v.uid for v in views} for name, views in self.registry.snapshot()}
        sweep_cutoff = self.clock() - TTL - GRACE
        for name, entries in self.model.items():
            for uid in list(entries):
                if uid not in held.get(name, set()):
                    assert entries[uid].stamp <= sweep_cutoff, f"{name}/{uid} lost early"
                    del entries[uid]

    # ------------------------------------------------------------------ rules

    @rule(seconds=st.sampled_from([0.0, 0.5, 3.0, 9.9, 10.0, 15.0, 40.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(partition=partitions, conns=st.lists(connections, max_size=5))
    def publish(self, partition: str, conns: list[Connection]) -> None:
        self.reconcile()
        part = self.model.get(partition)
        fresh = len({c.uid for c in conns} - set(part or {}))
        expect_limit = (
            (part is None and len(self.model) >= MAX_PARTITIONS)
            or len(part or {}) + fresh > MAX_PER_PARTITION
            or self.total() + fresh > MAX_TOTAL
        )
        try:
            self.registry.publish(partition, conns)
        except LimitExceeded:
            assert expect_limit, "refused a publish within the limits"
            return
        assert not expect_limit, "accepted a publish past a limit"
        entries = self.model.setdefault(partition, {})
        for c in conns:
            entries[c.uid] = ModelEntry(c, self.clock())

    @rule(partition=partitions, gone=st.lists(uids, max_size=4))
    def retract(self, partition: str, gone: list[str]) -> None:
        self.reconcile()
        result = self.registry.retract(partition, gone)
        entries = self.model.get(partition)
        assert result.partition_found == (entries is not None)
        if entries is None:
            return
        missing = []
        for uid in gone:
            if entries.pop(uid, None) is None:
                missing.append(uid)
        assert list(result.missing) == missing
        if not entries:
            del self.model[partition]

    @rule(partition=partitions)
    def retract_partition(self, partition: str) -> None:
        assert self.registry.retract_partition(partition) == (
            self.model.pop(partition, None) is not None
        )

    @rule()
    def purge(self) -> None:
        self.reconcile()
        expected = 0
        for entries in self.model.values():
            for uid in [u for u, e in entries.items() if not self.live(e)]:
                del entries[uid]
                expected += 1
        assert self.registry.purge() == expected

    @precondition(lambda self: self.model)
    @rule()
    def reset(self) -> None:
        self.registry.reset()
        self.model.clear()

    @rule(partition=partitions, pattern=patterns, data_type=data_types)
    def lookup(self, partition: str, pattern: str, data_type: str) -> None:
        found = self.registry.lookup(partition, compile_matcher(pattern), data_type)
        entries = self.model.get(partition)
        if entries is None:
            assert found is None
            return
        expected = [
            e.c.uid
            for uid, e in sorted(entries.items())
            if self.live(e) and e.c.data_type == data_type and re.fullmatch(pattern, uid)
        ]
        assert found is not None
        assert [_uid(j) for j in found] == expected

    # ------------------------------------------------------------------ invariants

    @invariant()
    def same_contents(self) -> None:
        self.reconcile()
        snapshot = self.registry.snapshot()
        assert [name for name, _ in snapshot] == sorted(self.model)
        for name, views in snapshot:
            entries = self.model[name]
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
        assert stored == self.total()
        assert live == sum(self.live(e) for p in self.model.values() for e in p.values())
        assert stored <= MAX_TOTAL
        assert partitions_held <= MAX_PARTITIONS


def _uid(encoded: bytes) -> str:
    import orjson

    value = orjson.loads(encoded)
    assert isinstance(value, dict)
    return str(value["uid"])


RegistryVersusModel.TestCase.settings = settings(
    max_examples=100,
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
