"""The sweeper: expired state goes away without publishes, in bounded chunks, from a thread
that starts with the first publish in each process and ends with its registry."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable

import pytest

from connection_flask.app import create_app
from connection_flask.registry import SWEEP_CHUNK, Connection, Registry
from connection_flask.settings import Settings
from tests.helpers import FakeClock, conn

TTL, GRACE = 10.0, 60.0


@pytest.fixture
def registry(clock: FakeClock) -> Registry:
    return Registry(TTL, GRACE, clock=clock)


def c(uid: str) -> Connection:
    return Connection(uid, "tcp://h:1", "TPSet", 0)


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_sweep_removes_entries_expired_past_the_grace_without_any_publish(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("p", [c("old")])
    clock.advance(30)
    registry.publish("p", [c("new")])
    clock.advance(TTL + GRACE - 30)
    assert registry.sweep_once() == 1
    assert registry.counts() == (1, 1, 0)
    clock.advance(30)
    assert registry.sweep_once() == 1
    assert registry.counts() == (0, 0, 0)


def test_sweep_keeps_entries_expired_within_the_grace(registry: Registry, clock: FakeClock) -> None:
    registry.publish("p", [c("a"), c("b")])
    clock.advance(TTL + GRACE - 1)
    assert registry.sweep_once() == 0
    assert registry.counts() == (1, 2, 0)


def test_sweep_removes_a_partition_it_empties(registry: Registry, clock: FakeClock) -> None:
    registry.publish("p", [c("a")])
    clock.advance(GRACE)
    registry.publish("p", [])  # a recent publish, but of nothing
    clock.advance(TTL + 1)
    assert registry.sweep_once() == 1
    assert not registry.has_partition("p")


def test_sweep_drops_a_partition_nothing_was_published_to_for_ttl_plus_grace(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("empty", [])
    clock.advance(TTL + GRACE - 1)
    registry.sweep_once()
    assert registry.has_partition("empty")
    clock.advance(1)
    registry.sweep_once()
    assert not registry.has_partition("empty")


def test_a_sweep_pass_looks_at_a_bounded_number_of_entries(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("big", [c(f"u{i:05d}") for i in range(5000)])
    clock.advance(TTL + GRACE)
    registry.publish("big", [c("alive")])  # keeps the partition from going whole
    passes = 1
    while registry.sweep_once(budget=1000) == 0:
        passes += 1
        assert passes <= 10
    assert passes == 6, "5001 entries at 1000 a pass (plus one for the partition itself)"
    assert registry.counts() == (1, 1, 1)


@pytest.mark.parametrize("walk", ["sweep_once", "purge"])
def test_walks_hold_the_lock_per_chunk_only_and_yield_between_chunks(
    registry: Registry, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, walk: str
) -> None:
    registry.publish("p", [c(f"u{i:05d}") for i in range(10 * SWEEP_CHUNK)])
    registry.publish("q", [c("x")])
    clock.advance(TTL + GRACE)
    registry.publish("p", [c("alive")])  # so neither partition goes whole, in O(1)
    registry.publish("q", [c("y")])
    locked_while_yielding: list[bool] = []
    monkeypatch.setattr(
        time, "sleep", lambda _: locked_while_yielding.append(registry._lock.locked())
    )
    assert getattr(registry, walk)() == 10 * SWEEP_CHUNK + 1
    assert len(locked_while_yielding) >= 9
    assert not any(locked_while_yielding)


def test_sweep_reports_what_it_removed_to_on_expired(clock: FakeClock) -> None:
    told: list[int] = []
    registry = Registry(TTL, GRACE, clock=clock, on_expired=told.append)
    registry.publish("p", [c("a"), c("b")])
    registry.publish("q", [c("a")])
    clock.advance(TTL + GRACE)
    registry.sweep_once()
    assert told == [3]
    registry.sweep_once()
    assert told == [3], "nothing removed, nothing told"


def test_live_count_follows_publishes_at_once_and_expiry_at_the_next_sweep(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("p", [c("a"), c("b"), c("c")])
    assert registry.counts() == (1, 3, 3)
    clock.advance(TTL)
    assert registry.counts() == (1, 3, 3), "expiry shows once the sweeper has looked"
    registry.sweep_once()
    assert registry.counts() == (1, 3, 0)
    registry.publish("p", [c("d")])
    assert registry.counts() == (1, 4, 1)
    registry.publish("p", [c("a")])  # revived: counted live again after the next sweep
    registry.sweep_once()
    assert registry.counts() == (1, 4, 2)


def test_retracting_an_entry_the_sweeper_saw_expired_keeps_the_live_count(
    registry: Registry, clock: FakeClock
) -> None:
    registry.publish("p", [c("a"), c("b")])
    clock.advance(TTL)
    registry.publish("p", [c("x")])
    registry.sweep_once()
    assert registry.counts() == (1, 3, 1)
    registry.retract("p", ["a"])
    assert registry.counts() == (1, 2, 1)
    assert registry.retract_partition("p")
    assert registry.counts() == (0, 0, 0)


# ----------------------------------------------------------------------------- the thread


def sweeper_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "connection-flask-sweeper"}


def quick(**kw: bool) -> Registry:
    return Registry(0.05, 0.05, sweep_interval=0.01, background_sweep=True, **kw)


def test_background_sweeper_starts_with_the_first_publish_and_frees_memory_alone() -> None:
    registry = quick()
    assert not registry.sweeping
    registry.publish("p", [c("a"), c("b")])
    assert registry.sweeping
    assert wait_for(lambda: registry.counts() == (0, 0, 0)), registry.counts()
    registry.stop_sweeper()


def test_background_sweeper_ends_when_its_registry_is_garbage_collected() -> None:
    before = sweeper_threads()
    registry = quick()
    registry.publish("p", [c("a")])
    [thread] = sweeper_threads() - before
    del registry
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_reset_stops_the_sweeper_and_the_next_publish_starts_another() -> None:
    before = sweeper_threads()
    registry = Registry(TTL, GRACE, sweep_interval=0.01, background_sweep=True)
    registry.publish("p", [c("a")])
    [first] = sweeper_threads() - before
    registry.reset()
    assert not registry.sweeping
    first.join(timeout=5)
    assert not first.is_alive()
    registry.publish("p", [c("a")])
    assert registry.sweeping
    [second] = sweeper_threads() - before
    assert second is not first
    registry.stop_sweeper()


def test_a_forked_child_starts_its_own_sweeper_with_its_first_publish() -> None:
    # Gunicorn --preload builds the app in the master and forks: the child has no thread.
    registry = Registry(TTL, GRACE, sweep_interval=0.01, background_sweep=True)
    registry.publish("p", [c("a")])
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through its exit status)
        ok = not registry.sweeping
        registry.publish("p", [c("b")])
        ok = ok and registry.sweeping and any(t.is_alive() for t in sweeper_threads())
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    registry.stop_sweeper()
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_app_on_the_real_clock_sweeps_in_the_background_and_counts_it() -> None:
    app = create_app(Settings(entry_ttl=0.05, purge_grace=0.05, sweep_interval=0.01))
    client = app.test_client()
    client.post("/publish", json={"partition": "p", "connections": [conn("a"), conn("b")]})

    def expired() -> float:
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith("connection_flask_entries_expired_total "):
                return float(line.split()[1])
        return 0.0

    assert wait_for(lambda: expired() == 2)
    assert app.extensions["connection_flask"].registry.counts() == (0, 0, 0)
    app.extensions["connection_flask"].registry.stop_sweeper()


def test_an_app_on_a_test_clock_leaves_sweeping_to_the_test(clock: FakeClock) -> None:
    app = create_app(Settings(), clock=clock)
    app.test_client().post("/publish", json={"partition": "p", "connections": [conn("a")]})
    assert not app.extensions["connection_flask"].registry.sweeping
