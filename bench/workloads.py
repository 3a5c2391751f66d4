"""The DAQ workload of ``make bench``: the requests wrk cycles through (one a line of a request
file read by bench/lua/requests.lua: ``PATH<TAB>BODY``).

A partition ``bench`` of applications of 20 connections each (4 data types, as a DAQ
application publishes them); lookups rotate over the first 50 applications, present at every
partition size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

APPS, CONNS_PER_APP, DATA_TYPES = 200, 20, 4
PARTITION = "bench"
LOOKUP_APPS = 50  # lookups rotate over app0000..app0049, present at every N
SIZES = (1_000, 10_000, 100_000)
MIXED_N = APPS * CONNS_PER_APP  # 4k


def uid(app: int, conn: int) -> str:
    return f"app{app:04d}-conn{conn:02d}"


def data_type(conn: int) -> str:
    return f"type{conn % DATA_TYPES}"


def connection(app: int, conn: int) -> dict[str, Any]:
    return {
        "uid": uid(app, conn),
        "uri": f"tcp://10.{app // 256 % 256}.{app % 256}.{conn + 1}:{15000 + conn}",
        "data_type": data_type(conn),
        "connection_type": conn % 2,
    }


def publish_body(app: int) -> str:
    conns = [connection(app, c) for c in range(CONNS_PER_APP)]
    return json.dumps({"partition": PARTITION, "connections": conns}, separators=(",", ":"))


def lookup_line(pattern: str, dtype: str) -> str:
    body = json.dumps({"uid_regex": pattern, "data_type": dtype}, separators=(",", ":"))
    return f"/getconnection/{PARTITION}\t{body}"


def exact_lines() -> list[str]:
    return [lookup_line(uid(a, 7), data_type(7)) for a in range(LOOKUP_APPS)]


def prefix_lines() -> list[str]:
    return [lookup_line(f"app{a:04d}-.*", data_type(a)) for a in range(LOOKUP_APPS)]


def broad_lines() -> list[str]:
    return [lookup_line(".*", data_type(0))]


def ceiling_lines() -> list[str]:
    """The exact-lookup bodies, posted to "/": the ceiling apps answer OK to any body there."""
    return ["/\t" + line.partition("\t")[2] for line in exact_lines()]


def publish_lines() -> list[str]:
    return [f"/publish\t{publish_body(a)}" for a in range(APPS)]


def mixed_lines() -> list[str]:
    """8 prefix lookups then 2 publishes, over and over: 80% / 20%."""
    lookups, publishes = prefix_lines(), publish_lines()
    out: list[str] = []
    li = pi = 0
    while pi < len(publishes):
        for _ in range(8):
            out.append(lookups[li % len(lookups)])
            li += 1
        for _ in range(2):
            out.append(publishes[pi])
            pi += 1
    return out


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Workload:
    """What one scenario sends: its name, the group of its results, the partition size it
    runs at and the results a request returns (None: not a lookup)."""

    name: str
    group: str
    entries: int
    found: int | None
    lines: list[str]


def publish(close: bool = False) -> Workload:
    how = "Connection: close" if close else "keep-alive"
    return Workload(
        f"publish 20 conns {how}", "publish", APPS * CONNS_PER_APP, None, publish_lines()
    )


def lookup(kind: str, n: int) -> Workload:
    """An ``exact``, ``prefix`` or ``broad`` lookup in a partition of ``n`` entries."""
    lines, found = {
        "exact": (exact_lines, 1),
        "prefix": (prefix_lines, CONNS_PER_APP // DATA_TYPES),
        "broad": (broad_lines, n // DATA_TYPES),
    }[kind]
    return Workload(f"lookup {kind} N={n}", "lookup", n, found, lines())


def mixed() -> Workload:
    return Workload(
        f"mixed 80% prefix / 20% publish N={MIXED_N}", "mixed", MIXED_N, None, mixed_lines()
    )
