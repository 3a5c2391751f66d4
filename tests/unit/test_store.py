"""The store boundary: what the endpoints talk to, whichever store holds the entries."""

from __future__ import annotations

import threading

from connection_flask.app import create_app
from connection_flask.registry import Registry
from connection_flask.settings import Settings
from connection_flask.store import MemoryStore, Store


def test_the_in_memory_store_offers_the_store_interface() -> None:
    assert isinstance(MemoryStore(10.0, 60.0), Store)


def test_the_registry_module_still_names_the_in_memory_store() -> None:
    assert Registry is MemoryStore


def test_an_app_keeps_its_entries_in_memory_by_default() -> None:
    app = create_app(Settings())
    assert isinstance(app.extensions["connection_flask"].registry, MemoryStore)


def test_recording_a_call_does_not_wait_for_a_writer() -> None:
    store = MemoryStore(10.0, 60.0)
    with store._lock:  # as a publish or a sweep chunk holds it
        lookup = threading.Thread(target=store.record_call, args=("lookup", 0.25))
        lookup.start()
        lookup.join(timeout=5)
        assert not lookup.is_alive()
    assert store.stats().lookups == 1
