"""Admin pages with the old server's wording: dump, statistics, resets, purge.

Scripts grep these pages, so headings and the "N calls to ..." lines keep the old text. Every
value that came from a client is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from flask import Blueprint, Response

from connection_flask.api import require_read, require_write
from connection_flask.registry import CallStats
from connection_flask.state import state

bp = Blueprint("admin", __name__)

_PAD = ' style="padding-left: 1em;padding-right: 1em"'
_HEAD = '<tr style="background: #e0e0e0">'


def _html(text: str) -> Response:
    return Response(text, mimetype="text/html")


def _stats_html(stats: CallStats) -> str:
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
    parts += [
        f"<p>Maximum entries in partition {escape(name)} = {count}</p>"
        for name, count in sorted(stats.max_entries.items())
    ]
    return "".join(parts)


def _stats_page(*, reset: bool) -> str:
    stats = state().registry.stats(reset=reset)
    return "<h1>Connection server statistics</h1>" + _stats_html(stats)


@bp.get("/")
def dump() -> Response:
    st = state()
    require_read(st)
    registry = st.registry
    snapshot = registry.snapshot()
    out = ["<h1>Dump of configuration dictionary</h1>", "<h2>Active partitions</h2><p>"]
    if not snapshot:
        out.append("None</p>")
    else:
        out.append(
            f'<table style="border: 1px solid black">{_HEAD}<th{_PAD}>Partition</th>'
            f"<th{_PAD}>Entries</th></tr>"
        )
        out += [
            f"<tr><td{_PAD}>{escape(name)}</td><td{_PAD}>{len(entries)}</td></tr>"
            for name, entries in snapshot
        ]
        out.append("</table></p><h2>Partitions</h2>")
        columns = ("uri", "data_type", "capacity", "connection_type", "age (s)")
        header = "".join(f"<th{_PAD}>{c}</th>" for c in columns)
        for name, entries in snapshot:
            out.append(
                f'<h3>{escape(name)}</h3><table style="border: 1px solid black">'
                f'{_HEAD}<th{_PAD} rowspan="2">Name</th>'
                f'<th{_PAD} colspan="{len(columns)}">Connection</th></tr>{_HEAD}{header}</tr>'
            )
            for e in entries:
                cells = (e.uid, e.uri, e.data_type, e.capacity, e.connection_type, f"{e.age:.1f}")
                row = "".join(
                    f"<td{_PAD}>"
                    + (f"<strike>{escape(str(v))}</strike>" if e.expired else escape(str(v)))
                    + "</td>"
                    for v in cells
                )
                out.append(f"<tr>{row}</tr>")
            out.append("</table>")
    out.append("<hr><h2>Server statistics</h2>")
    out.append(_stats_html(registry.stats()))
    return _html("".join(out))


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
