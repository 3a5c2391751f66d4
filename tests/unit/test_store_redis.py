"""The Redis store answers as the in-memory one: each behaviour on both stores, and a random
run of writes, clock moves and sweeps after which both must give the same bytes to every read.

Redis is a real redis-server (tests/redis_server.py); the stores take the test's FakeClock,
whose readings the Redis store sends to its scripts in place of the server's TIME.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator

import pytest

from connection_flask.matching import compile_matcher
from connection_flask.registry import make_store
from connection_flask.settings import Settings
from connection_flask.store import (
    Connection,
    LimitExceeded,
    MemoryStore,
    RedisStore,
    RetractResult,
    Store,
    redis_store,
)
from tests.helpers import FakeClock
from tests.redis_server import RedisServer

TTL, GRACE = 10.0, 60.0

MakeStore = Callable[..., Store]


@pytest.fixture
def make(store_url: str, clock: FakeClock) -> Iterator[MakeStore]:
    """make(**settings) -> a store of this test's kind (memory, then Redis) on the fake clock."""
    made: list[Store] = []

    def new(**settings: int) -> Store:
        chosen = Settings(entry_ttl=TTL, purge_grace=GRACE, store=store_url, **settings)
        store = make_store(chosen, clock=clock, on_expired=lambda n: None)
        made.append(store)
        return store

    yield new
    for store in made:
        if isinstance(store, RedisStore):
            store.close()


def c(uid: str, data_type: str = "TPSet", uri: str = "tcp://h:1", capacity: int = 0) -> Connection:
    return Connection(uid, uri, data_type, 0, capacity)


def uids(store: Store, pattern: str, data_type: str = "TPSet", part: str = "p") -> list[str]:
    found = store.lookup(part, compile_matcher(pattern), data_type)
    assert found is not None
    return [e.split(b'"')[3].decode() for e in found]


def test_lookups_answer_the_same_json_in_uid_order(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c("b"), c("a", capacity=7), c("c", "Other")])
    assert store.lookup("p", compile_matcher(".*"), "TPSet") == [
        b'{"uid":"a","uri":"tcp://h:1","connection_type":0,"data_type":"TPSet","capacity":7}',
        b'{"uid":"b","uri":"tcp://h:1","connection_type":0,"data_type":"TPSet","capacity":0}',
    ]
    assert store.lookup("q", compile_matcher(".*"), "TPSet") is None


def test_prefix_lookups_keep_to_their_prefix_and_data_type(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c(u) for u in ["app1-x", "app10-x", "app1-", "app2-x"]])
    store.publish("p", [c("app1-y", "B")])
    assert uids(store, "app1-.*") == ["app1-", "app1-x"]
    assert uids(store, "app1-.+") == ["app1-x"]
    assert uids(store, "app1-x") == ["app1-x"]
    assert uids(store, "app1-y") == []
    assert uids(store, "app[12]-x") == ["app1-x", "app2-x"]


def test_an_answer_bigger_than_one_script_reads_comes_whole_and_in_order(
    make: MakeStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "LOOKUP_CHUNK", 7)
    store = make()
    names = [f"u{i:02d}" for i in range(40)]
    store.publish("p", [c(u) for u in names[::2]])
    clock.advance(TTL - 1)
    store.publish("p", [c(u) for u in names[1::2]])
    assert uids(store, "u.*") == names
    assert uids(store, "u.1") == [u for u in names if u.endswith("1")]
    clock.advance(1)
    assert uids(store, ".*") == names[1::2]


def test_a_republish_with_a_new_data_type_moves_the_entry(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c("a", "Old")])
    store.publish("p", [c("a", "New", uri="tcp://h:2")])
    assert uids(store, ".*", "Old") == []
    assert uids(store, "a", "New") == ["a"]
    assert store.counts() == (1, 1, 1)


def test_entries_hide_at_the_ttl_and_go_after_the_grace(make: MakeStore, clock: FakeClock) -> None:
    store = make()
    store.publish("p", [c("a"), c("b")])
    clock.advance(TTL - 1)
    store.publish("p", [c("b")])
    clock.advance(1)
    assert uids(store, ".*") == ["b"]
    assert store.sweep_once() == 0  # "a" is hidden, within the grace
    clock.advance(GRACE)
    assert store.sweep_once() == 1
    assert store.partition_sizes() == [("p", 1)]


def test_a_partition_nobody_publishes_to_goes_whole_after_the_grace(
    make: MakeStore, clock: FakeClock
) -> None:
    store = make()
    store.publish("p", [c("a"), c("b")])
    store.publish("q", [])
    clock.advance(TTL + GRACE)
    assert store.sweep_once() == 2
    assert not store.has_partition("p") and not store.has_partition("q")


def test_purge_removes_every_expired_entry_and_empties_partitions(
    make: MakeStore, clock: FakeClock
) -> None:
    store = make()
    store.publish("p", [c("old")])
    store.publish("q", [c("x")])
    clock.advance(TTL)
    store.publish("q", [c("y")])
    assert store.purge() == 2
    assert store.partition_sizes() == [("q", 1)]
    assert store.counts() == (1, 1, 1)


def test_retract_reports_missing_uids_and_removes_an_emptied_partition(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c("a"), c("b")])
    assert store.retract("p", ["a", "zz"]) == RetractResult(True, ("zz",))
    assert store.retract("nope", ["a"]) == RetractResult(False, ())
    assert store.retract("p", ["b"]) == RetractResult(True, ())
    assert not store.has_partition("p")


def test_retract_partition_says_whether_it_was_held(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c("a")])
    assert store.retract_partition("p")
    assert not store.retract_partition("p")
    assert store.lookup("p", compile_matcher(".*"), "TPSet") is None


def test_limits_refuse_with_the_same_message_and_store_nothing(make: MakeStore) -> None:
    store = make(max_partitions=1, max_entries_per_partition=2, max_entries=3)
    store.publish("p", [c("a")])
    with pytest.raises(LimitExceeded, match=r"already holds 1 partitions \(.*MAX_PARTITIONS=1\)"):
        store.publish("q", [c("a")])
    with pytest.raises(LimitExceeded, match=r"^partition would hold 3 entries"):
        store.publish("p", [c("b"), c("c"), c("b")])
    assert uids(store, ".*") == ["a"]
    store.publish("p", [c("a"), c("b")])  # a republish is no growth
    assert store.counts() == (1, 2, 2)


def test_a_store_at_a_limit_reclaims_what_expired_past_the_grace(
    make: MakeStore, clock: FakeClock
) -> None:
    store = make(max_partitions=2)
    store.publish("old", [c("a")])
    store.publish("kept", [c("a")])
    clock.advance(TTL + GRACE)
    store.publish("kept", [])
    store.publish("new", [c("a")])
    assert [name for name, _ in store.partition_sizes()] == ["kept", "new"]


def test_entries_are_reclaimed_at_a_limit_at_most_once_per_sweep_interval(
    make: MakeStore, clock: FakeClock
) -> None:
    store = make(max_entries_per_partition=3, sweep_interval=5)
    store.publish("p", [c("a")])
    clock.advance(TTL + GRACE)
    store.publish("p", [c("b"), c("c")])
    store.publish("p", [c("d")])  # full: the reclaim removes "a"
    clock.advance(TTL + GRACE - 1)
    store.publish("p", [c("d")])
    with pytest.raises(LimitExceeded):
        store.publish("p", [c("e"), c("f")])  # "b" and "c" are long expired, but no walk yet
    clock.advance(5)
    store.publish("p", [c("e"), c("f")])
    assert uids(store, ".*") == ["d", "e", "f"]


def test_stats_count_calls_and_peaks_and_reset(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c("a"), c("b")])
    store.publish("q", [c("a")])
    store.record_call("publish", 0.5)
    store.record_call("lookup", 0.25)
    stats = store.stats(reset=True)
    assert (stats.publishes, stats.publish_seconds, stats.lookups, stats.lookup_seconds) == (
        1,
        0.5,
        1,
        0.25,
    )
    assert stats.max_partitions == 2
    assert stats.max_entries == {"p": 2, "q": 1}
    after = store.stats()
    assert (after.publishes, after.lookups, after.max_partitions) == (0, 0, 0)
    assert after.max_entries == {}
    assert after.since >= stats.since


def test_the_dump_page_merges_data_types_in_uid_order_from_a_cursor(
    make: MakeStore, clock: FakeClock
) -> None:
    store = make()
    store.publish("p", [c("b1", "B"), c("a1", "A"), c("a2", "A"), c("b2", "B"), c("x", "A")])
    clock.advance(TTL)
    store.publish("p", [c("a2", "A")])
    page = store.page("p", 3, prefix="")
    assert page is not None
    rows, more = page
    assert [(v.uid, v.data_type, v.age, v.expired) for v in rows] == [
        ("a1", "A", TTL, True),
        ("a2", "A", 0.0, False),
        ("b1", "B", TTL, True),
    ]
    assert more
    assert store.page("p", 3, after="a2", prefix="b") == (
        [store.page("p", 5)[0][i] for i in (2, 3)],  # type: ignore[index]
        False,
    )
    assert store.page("nope", 3) is None


def test_reset_forgets_every_partition(make: MakeStore) -> None:
    store = make()
    store.publish("p", [c("a")])
    store.publish("q", [c("b")])
    store.reset()
    assert store.counts() == (0, 0, 0)
    assert store.partition_sizes() == []


# ----------------------------------------------------------------------------- a random run


def random_run(store: Store, clock: FakeClock, seed: int) -> list[object]:
    """What every read answers through a random run of writes: the same for any store."""
    rng = random.Random(seed)
    names = ["app1-x", "app1-", "app10-y", "app2-x", "b\nc", "é1", "日本", "a" * 40, "x.y", "a"]
    patterns = [".*", "app1-.*", "app1-.+", "app1-x", "app[12]-x", "a.*", "b.c", "é.*", "日本"]
    seen: list[object] = []
    watched = ["p", "q", "r", "never"]
    indexes = [store.index(name) for name in watched]
    for step in range(300):
        op = rng.random()
        part = rng.choice(["p", "q", "r"])
        try:
            if op < 0.45:
                types, uri = ["A", "B", "Ü"], f"tcp://h:{rng.randint(1, 3)}"
                conns = [
                    c(rng.choice(names), rng.choice(types), uri) for _ in range(rng.randint(0, 4))
                ]
                store.publish(part, conns)
            elif op < 0.55:
                seen.append(store.retract(part, rng.sample(names, 2)))
            elif op < 0.6:
                seen.append(store.retract_partition(part))
            elif op < 0.75:
                clock.advance(rng.choice([0.5, 3.0, TTL, GRACE]))
            elif op < 0.8:
                seen.append(store.sweep_once())
            elif op < 0.82:
                seen.append(store.purge())
        except LimitExceeded as exc:
            seen.append(str(exc))
        seen.append((step, store.partition_sizes(), store.counts()[:2]))
        # Which change indexes moved (their values differ: each store counts its own way).
        now = [store.index(name) for name in watched]
        seen.append([after > before for before, after in zip(indexes, now, strict=True)])
        indexes = now
        for pattern in patterns:
            for data_type in ["A", "Ü"]:
                seen.append(store.lookup(part, compile_matcher(pattern), data_type))
        seen.append(store.page(part, 3, after=rng.choice([None, "app1-", "b"]), prefix=""))
        seen.append(store.page(part, 2, prefix="app1"))
    return seen


@pytest.mark.parametrize("seed", range(4))
def test_a_random_run_reads_the_same_on_both_stores(redis_server: RedisServer, seed: int) -> None:
    redis_server.flush()
    limits = Settings(max_partitions=2, max_entries_per_partition=6, max_entries=9)
    memory_clock, redis_clock = FakeClock(), FakeClock()
    memory = make_store(limits, clock=memory_clock, on_expired=lambda n: None)
    shared = make_store(
        dataclasses.replace(limits, store=redis_server.url),
        clock=redis_clock,
        on_expired=lambda n: None,
    )
    assert isinstance(memory, MemoryStore) and isinstance(shared, RedisStore)
    try:
        assert random_run(shared, redis_clock, seed) == random_run(memory, memory_clock, seed)
    finally:
        shared.close()
