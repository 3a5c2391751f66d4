"""The HTML of the admin pages: escaping, links, the statistics and the dump's bounded page.

Every value that came from a client is HTML-escaped here, and URL-encoded where it goes into a
link. Scripts grep these pages, so headings and the "N calls to ..." lines keep the old text.
"""

from __future__ import annotations

import datetime as dt
import time
from html import escape
from urllib.parse import quote

from connection_flask.store import CallStats, EntryView

# Rows rendered between two yields to other requests (store.memory's doc): about 0.1 ms. gevent
# polls for I/O only every 50 yields (or 5 ms), so a lookup waits up to 50 such slices per step.
ROWS_PER_YIELD = 25

STYLE = (
    "<style>table{border:1px solid black}th,td{padding-left:1em;padding-right:1em}"
    "tr.h{background:#e0e0e0}</style>"
)
COLUMNS = ("uri", "data_type", "capacity", "connection_type", "age (s)")
ENTRY_HEAD = (
    '<table><tr class="h"><th rowspan="2">Name</th>'
    f'<th colspan="{len(COLUMNS)}">Connection</th></tr><tr class="h">'
    + "".join(f"<th>{c}</th>" for c in COLUMNS)
    + "</tr>\n"
)


def stats_html(stats: CallStats, most: int | None = None) -> str:
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


def href(**params: str) -> str:
    """A link to the dump page, for an HTML attribute: every value URL-encoded, so nothing in
    it needs HTML escaping but the separators."""
    query = "&amp;".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v)
    return f"/?{query}" if query else "/"


class Page:
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


def row(e: EntryView) -> str:
    cells = (e.uid, e.uri, e.data_type, e.capacity, e.connection_type, f"{e.age:.1f}")
    if e.expired:
        text = "".join(f"<td><strike>{escape(str(v))}</strike></td>" for v in cells)
    else:
        text = "".join(f"<td>{escape(str(v))}</td>" for v in cells)
    return f"<tr>{text}</tr>\n"


def section(
    page: Page, name: str, views: list[EntryView], more: bool, *, uid: str, after: str
) -> int | None:
    """One partition's heading, as many of ``views`` as fit and a link to its next entries if
    any are left out; returns how many entries it showed, None if not even the heading fit."""
    head = f"<h3>{escape(name)}</h3>\n{ENTRY_HEAD}".encode()
    rows = []
    for i, e in enumerate(views, 1):
        rows.append(row(e).encode())
        if i % ROWS_PER_YIELD == 0:
            time.sleep(0)

    def end(shown: int) -> bytes:
        if shown == len(views) and not more:
            return b"</table>\n"
        last = views[shown - 1].uid if shown else after
        return (
            f'</table>\n<p><a href="{href(partition=name, uid=uid, after=last)}">'
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
