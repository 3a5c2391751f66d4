"""Change indexes of the in-memory store (store/changes.py): they grow with every change of
content, not with a republish that only refreshes times, and never go back."""

from __future__ import annotations

from connection_flask.store import Connection, MemoryStore
from tests.helpers import FakeClock

TTL, GRACE = 10.0, 60.0


def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(TTL, GRACE, clock=clock)


def c(uid: str, uri: str = "tcp://10.0.0.1:1", data_type: str = "T") -> Connection:
    return Connection(uid, uri, data_type, 0)


def test_a_publish_of_a_new_connection_raises_the_partition_and_store_index(
    clock: FakeClock,
) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    before, store_before = s.index("p"), s.index()
    s.publish("p", [c("b")])
    assert s.index("p") > before
    assert s.index() == s.index("p") > store_before


def test_a_republish_of_identical_connections_leaves_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a"), c("b")])
    before = s.index("p")
    clock.advance(2)
    s.publish("p", [c("a"), c("b")])
    assert s.index("p") == before


def test_a_republish_with_another_uri_raises_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    before = s.index("p")
    s.publish("p", [c("a", uri="tcp://10.0.0.2:2")])
    assert s.index("p") > before


def test_a_change_in_one_partition_leaves_another_partitions_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    s.publish("q", [c("a")])
    before = s.index("p")
    s.publish("q", [c("b")])
    assert s.index("p") == before


def test_a_retract_raises_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a"), c("b")])
    before = s.index("p")
    s.retract("p", ["a"])
    assert s.index("p") > before


def test_a_retract_of_unknown_uids_leaves_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    before = s.index("p")
    s.retract("p", ["nope"])
    assert s.index("p") == before


def test_a_partition_removed_and_published_again_never_goes_back(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    held = s.index("p")
    assert s.retract_partition("p")
    removed = s.index("p")
    s.publish("p", [c("a")])
    assert held < removed < s.index("p")


def test_an_unknown_partition_has_the_index_of_the_last_removal(clock: FakeClock) -> None:
    s = store(clock)
    never = s.index("never")
    s.publish("p", [c("a")])
    assert s.index("never") == never  # a publish elsewhere is no change of "never"
    s.retract_partition("p")
    assert s.index("never") == s.index("p") == s.index() > never


def test_expiry_seen_by_the_sweeper_raises_the_index_once(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a"), c("b")])
    clock.advance(TTL / 2)
    s.publish("p", [c("b")])  # b lives on, a will expire
    before = s.index("p")
    s.sweep_once()
    assert s.index("p") == before  # nothing expired yet
    clock.advance(TTL / 2 + 1)
    s.sweep_once()
    expired = s.index("p")
    assert expired > before
    clock.advance(1)
    s.sweep_once()
    assert s.index("p") == expired


def test_a_republish_of_an_expired_entry_raises_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    clock.advance(TTL + 1)
    before = s.index("p")
    s.publish("p", [c("a")])
    assert s.index("p") > before


def test_removal_past_the_grace_raises_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a"), c("b")])
    clock.advance(TTL + GRACE + 1)
    s.publish("p", [c("b")])
    before = s.index("p")
    s.sweep_once()
    page = s.page("p", 10)
    assert page is not None and [v.uid for v in page[0]] == ["b"]
    assert s.index("p") > before


def test_a_reset_raises_every_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("p", [c("a")])
    before, never = s.index("p"), s.index("never")
    s.reset()
    assert s.index("p") > before
    assert s.index("never") > never


def test_partition_counts_give_live_and_expired_entries_and_the_index(clock: FakeClock) -> None:
    s = store(clock)
    s.publish("q", [c("a")])
    clock.advance(TTL + 1)
    s.publish("p", [c("a"), c("b")])
    s.sweep_once()
    rows, index = s.partition_counts()
    assert [tuple(r) for r in rows] == [("p", 2, 0), ("q", 0, 1)]
    assert index == s.index()
