"""The registry on its own: storage, TTL with a fake clock, purge, sweep, retract rules, order."""

from __future__ import annotations

import orjson
import pytest

from connection_flask.matching import compile_matcher
from connection_flask.registry import Connection, LimitExceeded, Limits, Registry
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


def test_purge_removes_expired_entries_and_keeps_a_partition_with_live_ones(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("p", [c("old")])
    clock.advance(TTL)
    registry.publish("p", [c("new")])
    assert registry.purge() == 1
    assert registry.counts() == (1, 1, 1)
    assert uids(registry, ".*") == ["new"]


def test_purge_removes_the_partitions_it_empties(registry: Registry, clock: FakeClock) -> None:
    registry.publish("p", [c("a"), c("b")])
    registry.publish("q", [c("x")])
    clock.advance(TTL / 2)
    registry.publish("q", [c("y")])
    clock.advance(TTL / 2)
    assert registry.purge() == 3
    assert not registry.has_partition("p")
    assert registry.lookup("p", compile_matcher(".*"), "TPSet") is None
    assert uids(registry, ".*", part="q") == ["y"]


def test_publish_does_no_sweeping(registry: Registry, clock: FakeClock) -> None:
    registry.publish("dead", [c(f"d{i}") for i in range(50)])
    clock.advance(TTL + GRACE + 1)
    registry.publish("alive", [c("x")])
    assert registry.counts()[1] == 51, "the sweeper removes expired entries, not publishes"


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
    registry = Registry(
        TTL, GRACE, clock=clock, limits=Limits(partitions=1, entries_per_partition=2)
    )
    registry.publish("p", [c("a")])
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_PARTITIONS"):
        registry.publish("q", [c("a")])
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION"):
        registry.publish("p", [c("b"), c("c")])
    assert uids(registry, ".*") == ["a"]
    registry.publish("p", [c("a"), c("b")])  # a republish does not count as growth
    assert uids(registry, ".*") == ["a", "b"]


def test_max_partitions_wedge_recovers_once_the_partitions_expire_past_the_grace(
    clock: FakeClock,
) -> None:
    registry = Registry(TTL, GRACE, clock=clock, limits=Limits(partitions=5))
    for i in range(5):
        registry.publish(f"p{i}", [c("a")])
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_PARTITIONS"):
        registry.publish("new", [c("a")])
    clock.advance(TTL + GRACE - 1)
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_PARTITIONS"):
        registry.publish("new", [c("a")])  # expired but within the grace: still held
    clock.advance(1)
    registry.publish("new", [c("a")])
    assert uids(registry, ".*", part="new") == ["a"]
    assert registry.counts() == (1, 1, 1)
    assert registry.lookup("p0", compile_matcher(".*"), "TPSet") is None


def test_a_partition_with_a_recent_publish_is_not_reclaimed(clock: FakeClock) -> None:
    registry = Registry(TTL, GRACE, clock=clock, limits=Limits(partitions=2))
    registry.publish("old", [c("a")])
    registry.publish("kept", [c("a")])
    clock.advance(TTL + GRACE - 1)
    registry.publish("kept", [])  # an empty publish still says the partition is in use
    clock.advance(2)
    registry.publish("new", [c("a")])
    assert registry.has_partition("kept") and not registry.has_partition("old")


def test_purge_frees_partition_slots(clock: FakeClock) -> None:
    registry = Registry(TTL, GRACE, clock=clock, limits=Limits(partitions=2))
    registry.publish("p", [c("a")])
    registry.publish("q", [c("a")])
    clock.advance(TTL)
    assert registry.purge() == 2
    registry.publish("r", [c("a")])
    assert registry.counts() == (1, 1, 1)


def test_max_entries_recovers_once_entries_expire_past_the_grace(clock: FakeClock) -> None:
    registry = Registry(TTL, GRACE, clock=clock, limits=Limits(entries=4))
    registry.publish("p", [c("a"), c("b")])
    registry.publish("q", [c("a")])
    clock.advance(GRACE)
    registry.publish("q", [c("b")])  # keeps q in use while its "a" expires
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_ENTRIES="):
        registry.publish("q", [c("c"), c("d")])
    clock.advance(TTL + 1)  # p and q's "a" are now long expired, q's "b" only expired
    registry.publish("q", [c("c"), c("d")])
    assert registry.counts() == (1, 3, 2)
    assert not registry.has_partition("p")


def test_max_entries_per_partition_recovers_once_entries_expire_past_the_grace(
    clock: FakeClock,
) -> None:
    registry = Registry(TTL, GRACE, clock=clock, limits=Limits(entries_per_partition=2))
    registry.publish("p", [c("a"), c("b")])
    clock.advance(TTL + GRACE)
    registry.publish("p", [c("b")])
    clock.advance(1)
    registry.publish("p", [c("c")])
    assert uids(registry, ".*") == ["b", "c"]


def test_reclaiming_entries_at_a_limit_walks_at_most_once_per_sweep_interval(
    clock: FakeClock,
) -> None:
    removed: list[int] = []
    registry = Registry(
        TTL,
        GRACE,
        clock=clock,
        limits=Limits(entries=3),
        sweep_interval=5.0,
        on_expired=removed.append,
    )
    registry.publish("p", [c("a")])
    clock.advance(1)
    registry.publish("p", [c("b"), c("c")])
    clock.advance(TTL + GRACE - 0.5)  # only "a" is long expired
    registry.publish("p", [c("d")])  # full: the reclaim removes "a"
    assert removed == [1]
    clock.advance(1)  # now "b" and "c" are long expired too
    with pytest.raises(LimitExceeded):
        registry.publish("p", [c("e"), c("f")])  # but the last reclaim was 1 s ago
    assert removed == [1]
    clock.advance(4)
    registry.publish("p", [c("e"), c("f")])
    assert removed == [1, 2]
    assert uids(registry, ".*") == ["d", "e", "f"]


def test_a_registry_at_its_limit_with_nothing_expired_still_refuses(clock: FakeClock) -> None:
    registry = Registry(TTL, GRACE, clock=clock, limits=Limits(partitions=1, entries=2))
    registry.publish("p", [c("a"), c("b")])
    clock.advance(TTL + GRACE - 1)
    registry.publish("p", [c("a"), c("b")])
    clock.advance(TTL + GRACE - 1)
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_PARTITIONS"):
        registry.publish("q", [c("a")])
    with pytest.raises(LimitExceeded, match="CONNECTION_FLASK_MAX_ENTRIES="):
        registry.publish("p", [c("c")])


def test_stats_count_calls_and_reset(registry: Registry) -> None:
    registry.publish("p", [c("a"), c("b")])
    registry.record_call("publish", 0.5)
    registry.record_call("lookup", 0.25)
    stats = registry.stats(reset=True)
    assert (stats.publishes, stats.lookups, stats.max_partitions) == (1, 1, 1)
    assert stats.max_entries == {"p": 2}
    assert registry.stats().publishes == 0


def test_page_marks_expired_entries_and_gives_their_age(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("p", [c("a")])
    clock.advance(TTL)
    registry.publish("p", [c("b")])
    page = registry.page("p", 10)
    assert page is not None
    views, more = page
    assert [(e.uid, e.expired, e.age) for e in views] == [("a", True, TTL), ("b", False, 0.0)]
    assert not more


def test_page_merges_the_data_types_in_uid_order_from_a_cursor(registry: Registry) -> None:
    registry.publish("p", [c(f"u{i:02d}", data_type=f"T{i % 3}") for i in range(20)])

    def page(limit: int, after: str | None = None, prefix: str = "") -> tuple[list[str], bool]:
        got = registry.page("p", limit, after=after, prefix=prefix)
        assert got is not None
        return [e.uid for e in got[0]], got[1]

    assert page(4) == (["u00", "u01", "u02", "u03"], True)
    assert page(4, after="u03") == (["u04", "u05", "u06", "u07"], True)
    assert page(4, after="u17") == (["u18", "u19"], False)
    assert page(5, prefix="u1") == (["u10", "u11", "u12", "u13", "u14"], True)
    assert page(5, after="u16", prefix="u1") == (["u17", "u18", "u19"], False)
    assert registry.page("nope", 4) is None


def test_partition_sizes_are_sorted_by_name(registry: Registry) -> None:
    registry.publish("q", [c("a")])
    registry.publish("p", [c("a"), c("b")])
    assert registry.partition_sizes() == [("p", 2), ("q", 1)]


def test_reset_drops_everything(registry: Registry) -> None:
    registry.publish("p", [c("a")])
    registry.reset()
    assert registry.counts() == (0, 0, 0)
