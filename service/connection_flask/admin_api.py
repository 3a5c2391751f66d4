"""The JSON admin API under /api/v1, for tools: partitions, their connections, and watches.

- ``GET /api/v1/partitions``: every partition with its live and expired entry counts.
- ``GET /api/v1/partitions/<partition>/connections``: a page of its entries in uid order,
  filtered by ``uid_regex`` (the lookups' matcher) and ``data_type``, ``limit`` at a time from a
  ``cursor`` (the last uid of the page before).
- A watch is that request with ``index=N`` (and ``wait``): it waits until the partition's change
  index is no longer N, then answers as a read would (watches.py).

Every answer carries the change index (store/changes.py) in ``X-Registry-Index``, read before
the entries: a change made while they are read raises the index past the one returned, so a
watch from it answers at once rather than missing the change. Same read token as the dump page.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState

from connection_flask.environ_keys import ENDPOINT_KEY
from connection_flask.errors import Invalid, TooManyWatches
from connection_flask.matching import Matcher, PatternError, compile_matcher
from connection_flask.query_args import single_values
from connection_flask.settings import Settings
from connection_flask.state import state
from connection_flask.store import EntryView, Store, StoreUnavailable
from connection_flask.watches import Watches, answer_started

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1")

INDEX_HEADER = "X-Registry-Index"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
# Entries one request looks at, at most: past it a filtered page that is not full yet ends
# early with a next_cursor, so a uid_regex matching nothing in a large partition costs a few
# ms per request rather than a walk of the partition.
SCAN_BUDGET = 10 * MAX_LIMIT
_PARAMETERS = ("uid_regex", "data_type", "limit", "cursor", "index", "wait")
_WAIT = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)(ms|s|m)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
_INDEX = re.compile(r"\d{1,18}")  # below 2**63: a 64-bit integer for every client
_LIMIT = re.compile(r"\d{1,7}")


@bp.record_once
def _setup(setup: BlueprintSetupState) -> None:
    Watches.install(setup.app)


@bp.get("/partitions")
def api_partitions() -> Response:
    _no_parameters()
    rows, index = state().registry.partition_counts()
    partitions = [{"name": name, "live": live, "expired": expired} for name, live, expired in rows]
    return _answer(orjson.dumps({"partitions": partitions, "index": index}), 200, index)


@bp.get("/partitions/<partition>/connections")
def api_connections(partition: str) -> Response:
    st = state()
    settings = st.settings
    q = _query(settings)
    if len(partition) > settings.max_partition_length:
        raise Invalid(
            f"partition name is longer than CONNECTION_FLASK_MAX_PARTITION_LENGTH "
            f"({settings.max_partition_length})",
            "too_long",
        )
    registry = st.registry
    if q.index is None:
        index = registry.index(partition)
        return _answer(*_render(registry, partition, index, q), index)
    request.environ[ENDPOINT_KEY] = "api_watch"
    watches = Watches.of_app()
    query = (partition, q.matcher.pattern, q.data_type, q.limit, q.cursor)
    try:
        moved = watches.wait(partition, q.index, q.wait, query)
    except TooManyWatches as refused:
        with contextlib.suppress(StoreUnavailable):  # still a 429, without the index
            refused.headers[INDEX_HEADER] = str(registry.index(partition))
        raise
    done = answer_started()
    if done is not None:
        return done
    # A change tells the index to the watches it wakes; a wait that ended otherwise reads it.
    index = registry.index(partition) if moved is None else moved
    return watches.answer(
        query, index, lambda: _answer(*_render(registry, partition, index, q), index)
    )


def _render(registry: Store, partition: str, index: int, q: _Query) -> tuple[bytes, int]:
    """The JSON answer and its status."""
    found = _scan(registry, partition, q)
    if found is None:
        return orjson.dumps({"error": f"partition {partition!r} not found"}), 404
    rows, next_cursor = found
    connections = [
        {
            "uid": v.uid,
            "uri": v.uri,
            "data_type": v.data_type,
            "connection_type": v.connection_type,
            "capacity": v.capacity,
            "age_seconds": round(v.age, 3),
            "expired": v.expired,
        }
        for v in rows
    ]
    answer = {
        "partition": partition,
        "index": index,
        "connections": connections,
        "next_cursor": next_cursor,
    }
    return orjson.dumps(answer), 200


def _answer(body: bytes, status: int, index: int) -> Response:
    response = Response(body, status, mimetype="application/json")
    response.headers[INDEX_HEADER] = str(index)
    return response


# ----------------------------------------------------------------------------- query parameters


@dataclass(frozen=True, slots=True)
class _Query:
    matcher: Matcher
    data_type: str | None
    limit: int
    cursor: str | None
    index: int | None  # a watch when set
    wait: float  # seconds, already cut to CONNECTION_FLASK_WATCH_MAX_WAIT


_LENGTHS = {  # parameter -> the setting bounding its length
    "uid_regex": "max_regex_length",
    "data_type": "max_data_type_length",
    "cursor": "max_uid_length",
}


def _no_parameters() -> None:
    single_values(request.args, (), state().settings, {}, endpoint="this")


def _query(settings: Settings) -> _Query:
    values = single_values(request.args, _PARAMETERS, settings, _LENGTHS, endpoint="this")
    try:
        matcher = compile_matcher(values.get("uid_regex", ".*"))
    except PatternError as exc:
        raise Invalid(str(exc), "invalid_regex") from None
    index = _number("index", values.get("index"), _INDEX, "a non-negative integer")
    if "wait" in values and index is None:
        raise Invalid("query parameter 'wait' needs 'index': it is how long a watch waits")
    return _Query(
        matcher=matcher,
        data_type=values.get("data_type"),
        limit=_limit(values.get("limit")),
        cursor=values.get("cursor") or None,
        index=index,
        wait=min(_wait(values.get("wait"), settings), settings.watch_max_wait),
    )


def _number(name: str, raw: str | None, shape: re.Pattern[str], what: str) -> int | None:
    if raw is None:
        return None
    if not shape.fullmatch(raw):
        raise Invalid(f"query parameter {name!r} must be {what}, got {raw[:40]!r}")
    return int(raw)


def _limit(raw: str | None) -> int:
    limit = _number("limit", raw, _LIMIT, f"an integer from 1 to {MAX_LIMIT}")
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"query parameter 'limit' must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def _wait(raw: str | None, settings: Settings) -> float:
    """``500ms``, ``30s``, ``2m`` or plain seconds; none given means the longest allowed."""
    if raw is None:
        return settings.watch_max_wait
    m = _WAIT.fullmatch(raw)
    if m is None:
        raise Invalid(
            "query parameter 'wait' must be a duration such as 500ms, 30s, 2m or 10 (seconds), "
            f"got {raw[:40]!r}"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


# ----------------------------------------------------------------------------- the page


def _scan(registry: Store, partition: str, q: _Query) -> tuple[list[EntryView], str | None] | None:
    """Up to ``q.limit`` matching entries after the cursor and the cursor of the next page
    (None at the end); None if the partition is unknown. Reads pages of the store's sorted
    indexes (never the whole partition), yielding between them, and stops after SCAN_BUDGET
    entries: the cursor then points past the last one looked at."""
    matches = _uid_test(q.matcher)
    data_type = q.data_type
    rows: list[EntryView] = []
    after = q.cursor
    looked = 0
    while True:
        got = registry.page(partition, q.limit + 1, after=after, prefix=q.matcher.prefix)
        if got is None:
            # Unknown, or removed between two pages: what was found so far is the answer.
            return (rows, None) if looked else None
        views, more = got
        for v in views:
            if (data_type is None or v.data_type == data_type) and matches(v.uid):
                if len(rows) == q.limit:
                    return rows, rows[-1].uid
                rows.append(v)
        looked += len(views)
        if not more:
            return rows, None
        after = views[-1].uid
        if looked >= SCAN_BUDGET:
            return rows, after
        time.sleep(0)  # other requests run between pages (store/memory.py's doc)


def _uid_test(matcher: Matcher) -> Callable[[str], bool]:
    """Whether a uid the store's page gave (it starts with matcher.prefix) fully matches: the
    lookups' semantics, with their fast path for ``prefix.*`` (any tail without a newline)."""
    if matcher.any_tail and matcher.min_tail == 0:
        start = len(matcher.prefix)
        return lambda uid: "\n" not in uid[start:]
    fullmatch = matcher.regex.fullmatch
    return lambda uid: fullmatch(uid) is not None
