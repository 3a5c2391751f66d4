"""Admin pages with the old server's wording: dump, statistics, resets, purge.

Scripts grep these pages, so headings and the "N calls to ..." lines keep the old text. Every
value that came from a client is HTML-escaped, and URL-encoded where it goes into a link.

The dump (``GET /``) is polled by run control and read by people, at any registry size: it
shows at most CONNECTION_FLASK_DUMP_PAGE_SIZE entries per partition, stays under PAGE_BYTES,
and links onward where it stops. It reads the registry's sorted indexes, never all entries.
"""

from __future__ import annotations

import bisect
import datetime as dt
import operator
import time
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from flask import Blueprint, Response, request

from connection_flask.api import require_read, require_write
from connection_flask.registry import CallStats, EntryView, Store
from connection_flask.settings import Settings
from connection_flask.state import state
from connection_flask.validation import Invalid

bp = Blueprint("admin", __name__)

PAGE_BYTES = 1_000_000  # the most GET / answers, whatever the registry holds
OVERVIEW_BYTES = 300_000  # of which the table of partitions may take
STATS_BYTES = 100_000  # and the statistics at its end
_MB = f"{PAGE_BYTES / 1e6:g} MB"
# Rows rendered between two yields to other requests (registry module doc): about 0.1 ms. gevent
# polls for I/O only every 50 yields (or 5 ms), so a lookup waits up to 50 such slices per step.
ROWS_PER_YIELD = 25
# Bytes a row takes at the least, so a page never asks the registry for rows it cannot show.
MIN_ROW_BYTES = 60

_STYLE = (
    "<style>table{border:1px solid black}th,td{padding-left:1em;padding-right:1em}"
    "tr.h{background:#e0e0e0}</style>"
)
_COLUMNS = ("uri", "data_type", "capacity", "connection_type", "age (s)")
_ENTRY_HEAD = (
    '<table><tr class="h"><th rowspan="2">Name</th>'
    f'<th colspan="{len(_COLUMNS)}">Connection</th></tr><tr class="h">'
    + "".join(f"<th>{c}</th>" for c in _COLUMNS)
    + "</tr>\n"
)


def _html(text: str, status: int = 200) -> Response:
    return Response(text, status, mimetype="text/html")


def _stats_html(stats: CallStats, most: int | None = None) -> str:
    """The statistics; with ``most``, the per-partition peaks stop before that many bytes."""

    def line(calls: int, seconds: float, what: str) -> str:
        average = seconds / calls * 1e6 if calls else 0.0
        total = dt.timedelta(seconds=seconds)
        return (
            f"<p>{calls} calls to {what} in total time {total} "
            f"(average {average:.0f} &micro;s per call)</p>"
        )

    since = dt.datetime.fromtimestamp(stats.since).isoformat(sep=" ", timespec="seconds")
    parts = [
        f"<p>Since {since}</p>",
        line(stats.publishes, stats.publish_seconds, "publish"),
        line(stats.lookups, stats.lookup_seconds, "lookup"),
        f"<p>Maximum number of partitions active = {stats.max_partitions}</p>",
    ]
    peaks = sorted(stats.max_entries.items())
    left = None if most is None else most - 200
    for i, (name, count) in enumerate(peaks):
        text = f"<p>Maximum entries in partition {escape(name)} = {count}</p>"
        if left is not None:
            left -= len(text.encode())
            if left < 0:
                parts.append(f'<p>... {len(peaks) - i} more: see <a href="/stats">/stats</a></p>')
                break
        parts.append(text)
    return "".join(parts)


def _stats_page(*, reset: bool) -> str:
    stats = state().registry.stats(reset=reset)
    return "<h1>Connection server statistics</h1>" + _stats_html(stats)


# ----------------------------------------------------------------------------- the dump page


@dataclass(frozen=True)
class _Query:
    """GET / parameters; an empty value counts as not given (so an empty form field filters
    nothing)."""

    partition: str = ""
    uid: str = ""
    after: str = ""
    partitions_after: str = ""


_PARAMETERS = ("partition", "uid", "after", "partitions_after")


def _query(settings: Settings) -> _Query:
    args = request.args
    unknown = sorted(set(args) - set(_PARAMETERS))
    if unknown:
        raise Invalid(
            f"unknown query parameter {unknown[0]!r}: GET / takes {', '.join(_PARAMETERS)}"
        )
    values: dict[str, str] = {}
    for name in _PARAMETERS:
        given = args.getlist(name)
        if len(given) > 1:
            raise Invalid(f"query parameter {name!r} is given {len(given)} times; give it once")
        values[name] = given[0] if given else ""
    limits = {
        "partition": ("MAX_PARTITION_LENGTH", settings.max_partition_length),
        "partitions_after": ("MAX_PARTITION_LENGTH", settings.max_partition_length),
        "uid": ("MAX_UID_LENGTH", settings.max_uid_length),
        "after": ("MAX_UID_LENGTH", settings.max_uid_length),
    }
    for name, (setting, limit) in limits.items():
        if len(values[name]) > limit:
            raise Invalid(
                f"query parameter {name!r} is longer than CONNECTION_FLASK_{setting} ({limit})"
            )
    q = _Query(**values)
    if q.after and not q.partition:
        raise Invalid("query parameter 'after' pages through one partition: give 'partition' too")
    if q.partition and q.partitions_after:
        raise Invalid("give query parameter 'partition' or 'partitions_after', not both")
    return q


def _href(**params: str) -> str:
    """A link to the dump page, for an HTML attribute: every value URL-encoded, so nothing in
    it needs HTML escaping but the separators."""
    query = "&amp;".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v)
    return f"/?{query}" if query else "/"


class _Page:
    """The page's bytes, never more than its limit. ``held`` bytes are kept for the pieces that
    must end the page (closing tags, links onward, statistics), which ``add`` then spends; any
    other piece is checked against ``room`` first and ``put`` only if it fits."""

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.left = limit
        self.held = 0

    def room(self) -> int:
        return self.left - self.held

    def offer(self, text: str) -> bool:
        data = text.encode()
        if len(data) > self.room():
            return False
        self.put(data)
        return True

    def put(self, data: bytes) -> None:
        self.chunks.append(data)
        self.left -= len(data)

    def add(self, text: str) -> None:
        data = text.encode()
        self.held = max(0, self.held - len(data))
        self.put(data)


def _notice_bytes(settings: Settings) -> int:
    """A bound on a link onward: a partition name escaped (6 bytes a character at most) and
    URL-encoded (12), a uid prefix encoded, and fixed text."""
    return 400 + 18 * settings.max_partition_length + 12 * settings.max_uid_length


def _header(q: _Query, page_size: int) -> str:
    shown = ""
    if q.partition or q.uid or q.partitions_after:
        what = [f"partition {escape(q.partition)}"] if q.partition else []
        what += [f"uids starting with {escape(q.uid)}"] if q.uid else []
        what += [f"partitions after {escape(q.partitions_after)}"] if q.partitions_after else []
        shown = f'<p>Showing {", ".join(what)}. <a href="/">Show everything</a></p>'
    return (
        f"{_STYLE}\n<h1>Dump of configuration dictionary</h1>\n"
        f"<p>At most {page_size} entries per partition, in uid order; the page stops before "
        f"{_MB} and links onward. Query parameters: <code>partition</code> "
        "(one partition), <code>uid</code> (uids starting with it), <code>after</code> (uids "
        "after it, with <code>partition</code>), <code>partitions_after</code> (partitions "
        "after it).</p>\n"
        '<form method="get" action="/">Partition <input name="partition" value="'
        f'{escape(q.partition)}"> uid starts with <input name="uid" value="{escape(q.uid)}"> '
        '<button type="submit">Filter</button></form>\n'
        f"{shown}"
    )


def _row(e: EntryView) -> str:
    cells = (e.uid, e.uri, e.data_type, e.capacity, e.connection_type, f"{e.age:.1f}")
    if e.expired:
        text = "".join(f"<td><strike>{escape(str(v))}</strike></td>" for v in cells)
    else:
        text = "".join(f"<td>{escape(str(v))}</td>" for v in cells)
    return f"<tr>{text}</tr>\n"


@bp.get("/")
def dump() -> Response:
    st = state()
    require_read(st)
    settings = st.settings
    q = _query(settings)
    registry = st.registry
    page = _Page(PAGE_BYTES)
    page.add(_header(q, settings.dump_page_size))
    tail = "<hr><h2>Server statistics</h2>" + _stats_html(registry.stats(), STATS_BYTES)
    notice = _notice_bytes(settings)
    # Closing tags, the overview's link onward, the page's link onward, the statistics.
    page.held = 1_000 + 2 * notice + len(tail.encode())

    sizes = registry.partition_sizes()
    if q.partition:
        sizes = [(name, count) for name, count in sizes if name == q.partition]
    elif q.partitions_after:
        sizes = sizes[bisect.bisect_right(sizes, q.partitions_after, key=_name) :]
    status = 404 if q.partition and not sizes else 200

    page.add("<h2>Active partitions</h2><p>")
    if not sizes:
        page.add("None</p>")
        if status == 404:
            page.add(f"<p>No partition named {escape(q.partition)} is held.</p>")
    else:
        listed = _overview(page, sizes, q)
        page.add("<h2>Partitions</h2>")
        names = [name for name, _ in sizes[:listed]]
        last = _sections(page, registry, names, q, settings.dump_page_size)
        if last is None and listed < len(sizes):
            last = names[-1] if names else ""
        if last and not q.partition:
            page.add(
                f"<p><b>The page stops here to stay under {_MB}.</b> "
                f'<a href="{_href(partitions_after=last, uid=q.uid)}">Partitions after '
                f"{escape(last)}</a></p>"
            )
    page.add(tail)
    return Response(b"".join(page.chunks), status, mimetype="text/html")


def _overview(page: _Page, sizes: list[tuple[str, int]], q: _Query) -> int:
    """The table of partitions and their entry counts; returns how many it lists."""
    page.add('<table><tr class="h"><th>Partition</th><th>Entries</th></tr>')
    budget = OVERVIEW_BYTES
    listed = 0
    for name, count in sizes:
        row = (
            f'<tr><td><a href="{_href(partition=name, uid=q.uid)}">{escape(name)}</a></td>'
            f"<td>{count}</td></tr>\n"
        )
        budget -= len(row.encode())
        if budget < 0 or not page.offer(row):
            break
        listed += 1
        if listed % ROWS_PER_YIELD == 0:
            time.sleep(0)
    page.add("</table></p>")
    if listed < len(sizes):
        page.add(
            f"<p>{len(sizes) - listed} more partitions not listed: "
            f'<a href="{_href(partitions_after=sizes[listed - 1][0], uid=q.uid)}">'
            "the next partitions</a></p>"
            if listed
            else "<p>No room to list the partitions.</p>"
        )
    return listed


def _sections(
    page: _Page, registry: Store, names: list[str], q: _Query, page_size: int
) -> str | None:
    """Each partition's first page of entries, until the page is full. Returns None if every
    one fitted, else the last partition shown, whole or in part ("" if none was)."""
    limit = max(1, min(page_size, PAGE_BYTES // MIN_ROW_BYTES))
    filtered = bool(q.uid or q.after)
    shown_last = ""
    for name in names:
        time.sleep(0)
        got = registry.page(name, limit, after=q.after or None, prefix=q.uid)
        if got is None or (filtered and not got[0]):
            continue  # removed since the overview was read, or nothing in it matches
        views, more = got
        shown = _section(page, name, views, more, q)
        if shown is None:
            return shown_last
        shown_last = name
        if shown < len(views):
            return name
    return None


def _section(page: _Page, name: str, views: list[EntryView], more: bool, q: _Query) -> int | None:
    """One partition's heading, as many of ``views`` as fit and a link to its next entries if
    any are left out; returns how many entries it showed, None if not even the heading fit."""
    head = f"<h3>{escape(name)}</h3>\n{_ENTRY_HEAD}".encode()
    rows = []
    for i, e in enumerate(views, 1):
        rows.append(_row(e).encode())
        if i % ROWS_PER_YIELD == 0:
            time.sleep(0)

    def end(shown: int) -> bytes:
        if shown == len(views) and not more:
            return b"</table>\n"
        after = views[shown - 1].uid if shown else q.after
        return (
            f'</table>\n<p><a href="{_href(partition=name, uid=q.uid, after=after)}">'
            f"The next entries of {escape(name)}</a></p>\n"
        ).encode()

    room = page.room()
    need = len(head)
    shown = None
    for k in range(len(rows) + 1):
        need += len(rows[k - 1]) if k else 0
        if need > room:
            break
        if need + len(end(k)) <= room:
            shown = k
    if shown is None:
        return None
    for data in (head, *rows[:shown], end(shown)):
        page.put(data)
    return shown


_name = operator.itemgetter(0)


@bp.get("/stats")
def stats() -> Response:
    require_read(state())
    return _html(_stats_page(reset=False))


@bp.get("/resetStats")
def reset_stats() -> Response:
    require_write(state())
    return _html(_stats_page(reset=True))


@bp.get("/resetService")
def reset_service() -> Response:
    st = state()
    require_write(st)
    st.registry.reset()
    return _html(_stats_page(reset=True))


@bp.get("/purge")
def purge() -> Response:
    st = state()
    require_write(st)
    removed = st.registry.purge()
    st.metrics.purged.inc(removed)
    return _html(f"<p>Purged {removed} expired entries</p>")
