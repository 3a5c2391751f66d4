"""Admin pages with the old server's wording: dump, statistics, resets, purge.

Scripts grep these pages, so headings keep the old text. Every value that came from a client
is HTML-escaped, and URL-encoded where it goes into a link (admin_html holds the pieces).

The dump (``GET /``) is polled by run control and read by people, at any registry size: it
shows at most CONNECTION_FLASK_DUMP_PAGE_SIZE entries per partition, stays under PAGE_BYTES,
and links onward where it stops. It reads the store's sorted indexes, never all entries.
"""

from __future__ import annotations

import bisect
import operator
import time
from dataclasses import dataclass
from html import escape

from flask import Blueprint, Response, request

from connection_flask.admin_html import ROWS_PER_YIELD, STYLE, Page, href, section, stats_html
from connection_flask.errors import Invalid
from connection_flask.query_args import single_values
from connection_flask.settings import Settings
from connection_flask.state import state
from connection_flask.store import Store

bp = Blueprint("admin", __name__)

PAGE_BYTES = 1_000_000  # the most GET / answers, whatever the registry holds
OVERVIEW_BYTES = 300_000  # of which the table of partitions may take
STATS_BYTES = 100_000  # and the statistics at its end
_MB = f"{PAGE_BYTES / 1e6:g} MB"
# Bytes a row takes at the least, so a page never asks the registry for rows it cannot show.
MIN_ROW_BYTES = 60


def _html(text: str, status: int = 200) -> Response:
    return Response(text, status, mimetype="text/html")


def _stats_page(*, reset: bool) -> str:
    stats = state().registry.stats(reset=reset)
    return "<h1>Connection server statistics</h1>" + stats_html(stats)


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
_LENGTHS = {  # parameter -> the setting bounding its length
    "partition": "max_partition_length",
    "partitions_after": "max_partition_length",
    "uid": "max_uid_length",
    "after": "max_uid_length",
}


def _query(settings: Settings) -> _Query:
    values = single_values(request.args, _PARAMETERS, settings, _LENGTHS, endpoint="GET /")
    q = _Query(**values)
    if q.after and not q.partition:
        raise Invalid("query parameter 'after' pages through one partition: give 'partition' too")
    if q.partition and q.partitions_after:
        raise Invalid("give query parameter 'partition' or 'partitions_after', not both")
    return q


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
        f"{STYLE}\n<h1>Dump of configuration dictionary</h1>\n"
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


@bp.get("/")
def dump() -> Response:
    st = state()
    settings = st.settings
    q = _query(settings)
    registry = st.registry
    page = Page(PAGE_BYTES)
    page.add(_header(q, settings.dump_page_size))
    tail = "<hr><h2>Server statistics</h2>" + stats_html(registry.stats(), STATS_BYTES)
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
                f'<a href="{href(partitions_after=last, uid=q.uid)}">Partitions after '
                f"{escape(last)}</a></p>"
            )
    page.add(tail)
    return Response(b"".join(page.chunks), status, mimetype="text/html")


def _overview(page: Page, sizes: list[tuple[str, int]], q: _Query) -> int:
    """The table of partitions and their entry counts; returns how many it lists."""
    page.add('<table><tr class="h"><th>Partition</th><th>Entries</th></tr>')
    budget = OVERVIEW_BYTES
    listed = 0
    for name, count in sizes:
        row = (
            f'<tr><td><a href="{href(partition=name, uid=q.uid)}">{escape(name)}</a></td>'
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
            f'<a href="{href(partitions_after=sizes[listed - 1][0], uid=q.uid)}">'
            "the next partitions</a></p>"
            if listed
            else "<p>No room to list the partitions.</p>"
        )
    return listed


def _sections(
    page: Page, registry: Store, names: list[str], q: _Query, page_size: int
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
        shown = section(page, name, views, more, uid=q.uid, after=q.after)
        if shown is None:
            return shown_last
        shown_last = name
        if shown < len(views):
            return name
    return None


_name = operator.itemgetter(0)


@bp.get("/stats")
def stats() -> Response:
    return _html(_stats_page(reset=False))


@bp.get("/resetStats")
def reset_stats() -> Response:
    return _html(_stats_page(reset=True))


@bp.get("/resetService")
def reset_service() -> Response:
    st = state()
    st.registry.reset()
    return _html(_stats_page(reset=True))


@bp.get("/purge")
def purge() -> Response:
    st = state()
    removed = st.registry.purge()
    st.metrics.purged.inc(removed)
    return _html(f"<p>Purged {removed} expired entries</p>")
