"""Things to show when an end-to-end test fails: server logs, cluster state.

Fixtures register a named callable while their server or cluster is up; conftest.py appends the
output of every registered callable to the report of a failing test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

SOURCES: dict[str, Callable[[], str]] = {}


@contextmanager
def dump_on_failure(name: str, source: Callable[[], str]) -> Iterator[None]:
    SOURCES[name] = source
    try:
        yield
    finally:
        SOURCES.pop(name, None)


def collect() -> list[tuple[str, str]]:
    out = []
    for name, source in list(SOURCES.items()):
        try:
            text = source()
        except Exception as exc:  # a broken dump must not hide the real failure
            text = f"(collecting {name} failed: {exc!r})"
        out.append((name, text))
    return out
