"""One data_type's entries of a partition in uid order, and the lookups it answers by bisection."""

from __future__ import annotations

import bisect

from connection_flask.matching import Matcher
from connection_flask.store.entries import Entry, stamp_of


class Index:
    """A snapshot: a write that changes which entries a data_type holds builds a new Index and
    never edits the old one, so a lookup reads it whole without a lock."""

    __slots__ = ("floor", "jsons", "newline", "rows", "uids")

    def __init__(self, uids: list[str], rows: list[Entry]) -> None:
        self.uids = uids
        self.rows = rows
        self.jsons = [e.json for e in rows]
        # Whether any uid holds a newline, which `.` does not match.
        self.newline = any("\n" in u for u in uids)
        # A lower bound of every row's stamp. Stamps only grow (a republish refreshes one in
        # place), so once set it stays a lower bound; while it is above a lookup's cutoff,
        # every row is live and the answer needs no per-entry check.
        self.floor = min(e.stamp for e in rows)

    def find(self, matcher: Matcher, cutoff: float) -> list[bytes]:
        """JSON of the rows ``matcher`` matches that were published after ``cutoff``, in uid
        order, in a new list. Literal patterns never get here: the partition answers them."""
        rows, prefix = self.rows, matcher.prefix
        if prefix:
            uids = self.uids
            lo, hi = bisect.bisect_left(uids, prefix), prefix_end(uids, prefix)
        else:
            lo, hi = 0, len(rows)
        if matcher.any_tail:
            plen, min_tail = len(prefix), matcher.min_tail
            if min_tail == 0 and not self.newline:
                if self.floor <= cutoff and hi - lo == len(rows):
                    # A whole-list answer: one pass over the stamps may show that all are live
                    # again, which then serves every lookup until the oldest stamp expires.
                    self.floor = min(map(stamp_of, rows))
                if self.floor > cutoff:
                    return self.jsons[lo:hi]  # `prefix.*`: every row in range matches, all live
            rows = rows[lo:hi]
            if min_tail == 0:
                return [
                    e.json
                    for e in rows
                    if e.stamp > cutoff and ("\n" not in (u := e.uid) or "\n" not in u[plen:])
                ]
            return [
                e.json
                for e in rows
                if e.stamp > cutoff
                and len(u := e.uid) - plen >= min_tail
                and ("\n" not in u or "\n" not in u[plen:])
            ]
        fullmatch = matcher.regex.fullmatch
        return [e.json for e in rows[lo:hi] if e.stamp > cutoff and fullmatch(e.uid) is not None]

    def head(self, limit: int, after: str | None, prefix: str) -> list[Entry]:
        """Up to ``limit`` rows whose uid starts with ``prefix`` and comes after ``after``."""
        uids = self.uids
        lo = bisect.bisect_left(uids, prefix) if prefix else 0
        if after is not None:
            lo = max(lo, bisect.bisect_right(uids, after))
        hi = min(prefix_end(uids, prefix) if prefix else len(uids), lo + limit)
        return self.rows[lo:hi]


def prefix_end(uids: list[str], prefix: str) -> int:
    """Index just past the last uid starting with prefix in a sorted list."""
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        return bisect.bisect_left(uids, prefix[:-1] + chr(last + 1))
    i = bisect.bisect_left(uids, prefix)
    while i < len(uids) and uids[i].startswith(prefix):
        i += 1
    return i
