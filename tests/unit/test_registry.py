"""The registry on its own: storage, TTL with a fake clock, purge, sweep, retract rules, order."""

from __future__ import annotations

import orjson
import pytest

from connection_flask.matching import compile_matcher
from connection_flask.registry import Connection, LimitExceeded, Registry
from tests.helpers import FakeClock

TTL, GRACE = 10.0, 60.0


@pytest.fixture
def registry(clock: FakeClock) -> Registry:
    return Registry(TTL, GRACE, clock=clock)


def c(uid: str, data_type: str = "TPSet", uri: str = "tcp://h:1", capacity: int = 0) -> Connection:
    return Connection(uid, uri, data_type, 0, capacity)


def uids(registry: Registry, pattern: str, data_type: str = "TPSet", part: str = "p") -> list[str]:
    found = registry.lookup(part, compile_matcher(pattern), data_type)
    assert found is not None, "partition unknown"
    return [orjson.loads(j)["uid"] for j in found]


def test_published_entries_are_found_sorted_by_uid(registry: Registry) -> None:
    registry.publish("p", [c("b"), c("c"), c("a")])
    assert uids(registry, ".*") == ["a", "b", "c"]


def test_lookup_json_has_the_old_servers_key_order(registry: Registry) -> None:
    registry.publish("p", [Connection("a", "tcp://h:1", "TPSet", 1, 7)])
    found = registry.lookup("p", compile_matcher("a"), "TPSet")
    assert found == [
        b'{"uid":"a","uri":"tcp://h:1","connection_type":1,"data_type":"TPSet","capacity":7}'
    ]


def test_unknown_partition_is_none_and_known_empty_is_empty_list(registry: Registry) -> None:
    assert registry.lookup("nope", compile_matcher(".*"), "TPSet") is None
    registry.publish("p", [c("a")])
    assert registry.lookup("p", compile_matcher(".*"), "Other") == []


def test_republish_overwrites_by_uid(registry: Registry) -> None:
    registry.publish("p", [c("a", uri="tcp://old:1")])
    registry.publish("p", [c("a", uri="tcp://new:2")])
    found = registry.lookup("p", compile_matcher("a"), "TPSet")
    assert found is not None and b"tcp://new:2" in found[0] and len(found) == 1


def test_republish_with_a_new_data_type_moves_the_entry(registry: Registry) -> None:
    registry.publish("p", [c("a", "Old")])
    registry.publish("p", [c("a", "New")])
    assert uids(registry, ".*", "Old") == []
    assert uids(registry, ".*", "New") == ["a"]
    assert uids(registry, "a.*", "New") == ["a"]


def test_entry_is_invisible_once_ttl_has_passed(registry: Registry, clock: FakeClock) -> None:
    registry.publish("p", [c("a")])
    clock.advance(TTL - 0.001)
    assert uids(registry, "a") == ["a"]
    clock.advance(0.001)
    assert uids(registry, "a") == []
    assert uids(registry, ".*") == []


def test_republishing_revives_an_expired_entry(registry: Registry, clock: FakeClock) -> None:
    registry.publish("p", [c("a")])
    clock.advance(TTL + 5)
    assert uids(registry, "a") == []
    registry.publish("p", [c("a")])
    assert uids(registry, "a") == ["a"]


def test_purge_removes_expired_entries_but_keeps_the_partition(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("p", [c("old")])
    clock.advance(TTL)
    registry.publish("p", [c("new")])
    assert registry.purge() == 1
    assert registry.counts() == (1, 1, 1)
    clock.advance(TTL)
    assert registry.purge() == 1
    assert registry.has_partition("p")
    assert registry.lookup("p", compile_matcher(".*"), "TPSet") == []


def test_sweep_removes_entries_expired_past_the_grace_period(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("dead", [c(f"d{i}") for i in range(50)])
    clock.advance(TTL + GRACE - 1)
    registry.publish("alive", [c("x")])
    assert registry.counts()[1] == 51, "within grace: nothing removed yet"
    clock.advance(2)
    removed = 0
    for _ in range(10):
        removed += registry.publish("alive", [c("x")]).expired_removed
    assert removed == 50
    assert registry.counts() == (2, 1, 1)
    assert registry.has_partition("dead"), "the sweep never removes partitions"


def test_sweep_work_per_publish_is_bounded(registry: Registry, clock: FakeClock) -> None:
    registry.publish("big", [c(f"u{i:05d}") for i in range(5000)])
    clock.advance(TTL + GRACE + 1)
    first = registry.publish("other", [c("x")]).expired_removed
    assert 0 < first <= 40, "one small publish may only look at a few entries"


def test_retract_removes_listed_uids_and_reports_missing(registry: Registry) -> None:
    registry.publish("p", [c("a"), c("b"), c("c")])
    result = registry.retract("p", ["a", "zzz"])
    assert result.partition_found and result.missing == ("zzz",)
    assert uids(registry, ".*") == ["b", "c"]


def test_retract_of_unknown_partition(registry: Registry) -> None:
    assert not registry.retract("nope", ["a"]).partition_found


def test_retracting_the_last_entry_removes_the_partition(registry: Registry) -> None:
    registry.publish("p", [c("a")])
    registry.retract("p", ["a"])
    assert not registry.has_partition("p")


def test_retract_partition(registry: Registry) -> None:
    registry.publish("p", [c("a")])
    assert registry.retract_partition("p")
    assert not registry.retract_partition("p")
    assert registry.lookup("p", compile_matcher(".*"), "TPSet") is None


def test_partitions_are_independent(registry: Registry) -> None:
    registry.publish("p", [c("a")])
    registry.publish("q", [c("b")])
    assert uids(registry, ".*", part="p") == ["a"]
    assert uids(registry, ".*", part="q") == ["b"]


def test_prefix_lookup_does_not_leak_into_neighbouring_uids(registry: Registry) -> None:
    registry.publish("p", [c(u) for u in ["app1-x", "app10-x", "app1-", "app2-x", "app0-x"]])
    assert uids(registry, "app1-.*") == ["app1-", "app1-x"]
    assert uids(registry, "app1-.+") == ["app1-x"]


def test_full_match_semantics(registry: Registry) -> None:
    registry.publish("p", [c("DRO"), c("DRO-000")])
    assert uids(registry, "DRO") == ["DRO"]
    assert uids(registry, "DRO.*") == ["DRO", "DRO-000"]
    assert uids(registry, "DRO-00[0-9]") == ["DRO-000"]


def test_limits_refuse_growth_and_store_nothing(clock: FakeClock) -> None:
    registry = Registry(TTL, GRACE, clock=clock, max_partitions=1, max_entries_per_partition=2)
    registry.publish("p", [c("a")])
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_PARTITIONS"):
        registry.publish("q", [c("a")])
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION"):
        registry.publish("p", [c("b"), c("c")])
    assert uids(registry, ".*") == ["a"]
    registry.publish("p", [c("a"), c("b")])  # a republish does not count as growth
    assert uids(registry, ".*") == ["a", "b"]


def test_stats_count_calls_and_reset(registry: Registry) -> None:
    registry.publish("p", [c("a"), c("b")])
    registry.record_call("publish", 0.5)
    registry.record_call("lookup", 0.25)
    stats = registry.stats(reset=True)
    assert (stats.publishes, stats.lookups, stats.max_partitions) == (1, 1, 1)
    assert stats.max_entries == {"p": 2}
    assert registry.stats().publishes == 0


def test_snapshot_marks_expired_entries(registry: Registry, clock: FakeClock) -> None:
    registry.publish("p", [c("a")])
    clock.advance(TTL)
    registry.publish("p", [c("b")])
    [(name, entries)] = registry.snapshot()
    assert name == "p"
    assert [(e.uid, e.expired) for e in entries] == [("a", True), ("b", False)]


def test_reset_drops_everything(registry: Registry) -> None:
    registry.publish("p", [c("a")])
    registry.reset()
    assert registry.counts() == (0, 0, 0)
