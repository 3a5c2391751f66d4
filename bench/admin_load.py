"""The admin-page scenario of ``make bench`` (issue 12): ``GET /`` on a big registry must not
hurt lookups.

Fills one server (the default launcher) with 1,000,000 entries over 4 partitions (the most
``CONNECTION_FLASK_MAX_ENTRIES`` allows, ``MAX_ENTRIES_PER_PARTITION`` being 500,000),
published 10,000 connections per request on one keep-alive connection. Then lookups alone for
a few seconds (the baseline), then one client process (bench/stress_clients.py ``dump``) asks
for ``GET /`` again and again while this process looks up, each lookup on a new TCP
connection with a 0.5 s deadline, as the DAQ clients do. Target: lookup p99 under 50 ms while
the dump is served; the dump page itself is meant to stay under 1 MB.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clients as sc

BENCH = Path(__file__).resolve().parent
CLIENTS = BENCH / "stress_clients.py"

PARTITIONS, BATCH, CONNS_PER_APP, DATA_TYPES = 4, 10_000, 20, 4
LOOKUP_APPS = 200  # lookups rotate over this many applications, spread over the partitions
MAX_LOOKUP_P99_MS = 50.0
MAX_PAGE_BYTES = 1_000_000
BASELINE_SECONDS = 5.0


@dataclass
class Dump:
    """The ``GET /`` requests of the dump client."""

    gets: int
    errors: dict[str, int]
    statuses: dict[str, int]
    bytes_median: int
    bytes_max: int
    seconds_median: float
    seconds_max: float


@dataclass
class AdminOutcome:
    config: str
    entries: int
    partitions: int
    fill_seconds: float
    rss_mb_after_fill: float
    seconds: float  # of lookups while the dump client runs
    rate: float
    timeout: float
    baseline: dict[str, Any]  # latency_summary of the lookups before the dump client starts
    loaded: dict[str, Any]  # ... and while it runs
    dump: Dump
    rss_mb_max: float = 0.0
    timeline: list[list[float]] = field(default_factory=list)


def summarise_gets(gets: list[dict[str, Any]]) -> Dump:
    ok = [g for g in gets if "error" not in g]
    errors: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for g in gets:
        if "error" in g:
            errors[g["error"]] = errors.get(g["error"], 0) + 1
        else:
            statuses[str(g["status"])] = statuses.get(str(g["status"]), 0) + 1
    sizes = [int(g["bytes"]) for g in ok]
    times = [float(g["seconds"]) for g in ok]
    return Dump(
        gets=len(gets),
        errors=errors,
        statuses=statuses,
        bytes_median=int(statistics.median(sizes)) if sizes else 0,
        bytes_max=max(sizes, default=0),
        seconds_median=round(statistics.median(times), 3) if times else 0.0,
        seconds_max=round(max(times, default=0.0), 3),
    )


# ----------------------------------------------------------------------------- data


def partition(p: int) -> str:
    return f"admin{p}"


def uid(app: int, conn: int) -> str:
    return f"a{app:06d}-c{conn:02d}"


def batches(entries: int, partitions: int, batch: int) -> list[tuple[str, int, int]]:
    """(partition, first app, apps) per publish: ``entries`` connections, apps of 20, split
    evenly over ``partitions``, at most ``batch`` connections per publish."""
    apps = entries // CONNS_PER_APP
    per = -(-apps // partitions)  # apps per partition, the last one may get fewer
    step = max(batch // CONNS_PER_APP, 1)
    out = []
    for p in range(partitions):
        first, last = p * per, min((p + 1) * per, apps)
        out += [(partition(p), a, min(step, last - a)) for a in range(first, last, step)]
    return out


def publish_body(name: str, first: int, apps: int) -> bytes:
    conns = [
        {
            "uid": uid(a, c),
            "uri": f"tcp://10.{a // 65536 % 256}.{a // 256 % 256}.{a % 256}:{15000 + c}",
            "data_type": f"type{c % DATA_TYPES}",
            "connection_type": c % 2,
        }
        for a in range(first, first + apps)
        for c in range(CONNS_PER_APP)
    ]
    return json.dumps({"partition": name, "connections": conns}, separators=(",", ":")).encode()


def fill(port: int, entries: int, partitions: int = PARTITIONS, batch: int = BATCH) -> float:
    """Publish ``entries`` connections; seconds it took."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(sc.HOST, port, timeout=120)
    try:
        for name, first, apps in batches(entries, partitions, batch):
            conn.request(
                "POST",
                "/publish",
                publish_body(name, first, apps),
                {"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"admin fill: publish answered {resp.status}: {body[:200]!r}")
    finally:
        conn.close()
    return time.monotonic() - t0


def plan(port: int, entries: int, partitions: int = PARTITIONS) -> list[sc.Planned]:
    """Prefix lookups of one application's connections of one data type (5 results), over
    ``LOOKUP_APPS`` applications spread evenly over the registry."""
    apps = entries // CONNS_PER_APP
    per = -(-apps // partitions)
    out = []
    for i in range(LOOKUP_APPS):
        app = i * apps // LOOKUP_APPS
        body = json.dumps({"uid_regex": f"a{app:06d}-.*", "data_type": f"type{i % DATA_TYPES}"})
        path = f"/getconnection/{partition(app // per)}"
        out.append(
            sc.Planned(
                "lookup",
                sc.raw_request("POST", path, port, body.encode()),
                sc.expect_list(CONNS_PER_APP // DATA_TYPES),
            )
        )
    return out


# ----------------------------------------------------------------------------- the scenario


def run(
    port: int,
    worker: int,
    config: str,
    *,
    entries: int,
    seconds: float,
    rate: float = 100.0,
    timeout: float = 0.5,
    dump_timeout: float = 120.0,
) -> AdminOutcome:
    print(f"    filling {entries:,} entries over {PARTITIONS} partitions", flush=True)
    fill_seconds = fill(port, entries)
    rss = sc.rss_mb(worker)
    print(f"    filled in {fill_seconds:.0f} s; worker RSS {rss:.0f} MB", flush=True)
    lookups = plan(port, entries)
    base = sc.run_clients(port, lookups, min(BASELINE_SECONDS, seconds), rate=rate, timeout=timeout)
    probes: list[float] = []

    def probe() -> None:
        with contextlib.suppress(OSError):
            probes.append(sc.rss_mb(worker))

    cmd = [sys.executable, str(CLIENTS), "dump", "--port", str(port), "--seconds", str(seconds)]
    cmd += ["--timeout", str(dump_timeout)]
    with sc.child(cmd, stdin=subprocess.DEVNULL) as proc:
        time.sleep(0.2)  # the first GET / is on its way
        loaded = sc.run_clients(port, lookups, seconds, rate=rate, timeout=timeout, between=probe)
        out, _ = proc.communicate(timeout=dump_timeout + 30)
    return AdminOutcome(
        config=config,
        entries=entries,
        partitions=PARTITIONS,
        fill_seconds=round(fill_seconds, 1),
        rss_mb_after_fill=round(rss, 1),
        seconds=seconds,
        rate=rate,
        timeout=timeout,
        baseline=sc.latency_summary(base),
        loaded=sc.latency_summary(loaded),
        dump=summarise_gets(sc.result(out, "dump")["gets"]),
        rss_mb_max=round(max(probes, default=rss), 1),
        timeline=sc.timeline(loaded),
    )


def report(o: AdminOutcome) -> None:
    d, b, w = o.dump, o.baseline, o.loaded
    print(
        f"  admin [{o.config}] {o.entries:,} entries: GET / x{d.gets} {d.statuses} "
        f"{d.errors or ''} median {d.bytes_median:,} B in {d.seconds_median:.2f} s (max "
        f"{d.seconds_max:.2f} s); lookups alone p50 {b['p50_ms']:.1f} p99 {b['p99_ms']:.1f} ms, "
        f"during GET / p50 {w['p50_ms']:.1f} p99 {w['p99_ms']:.1f} max {w['max_ms']:.1f} ms, "
        f"{w['failures']} of {w['requests']} failed {w['errors'] or ''}",
        flush=True,
    )


# ----------------------------------------------------------------------------- report


def from_json(data: dict[str, Any]) -> AdminOutcome:
    return AdminOutcome(**{**data, "dump": Dump(**data["dump"])})


def verdicts(o: AdminOutcome) -> list[tuple[str, str, str, bool]]:
    w = o.loaded
    p99_ok = w["requests"] > 0 and w["failures"] == 0 and w["p99_ms"] < MAX_LOOKUP_P99_MS
    size_ok = o.dump.gets > 0 and not o.dump.errors and o.dump.bytes_max <= MAX_PAGE_BYTES
    size = f"{o.dump.bytes_max:,} bytes" + (f", {o.dump.errors}" if o.dump.errors else "")
    return [
        (
            f"lookup p99 while GET / is served at {o.entries:,} entries",
            f"< {MAX_LOOKUP_P99_MS:.0f} ms, no failure",
            f"{w['p99_ms']:.1f} ms, {w['failures']} of {w['requests']} failed",
            p99_ok,
        ),
        (
            f"GET / size at {o.entries:,} entries",
            f"<= {MAX_PAGE_BYTES:,} bytes",
            size,
            size_ok,
        ),
    ]


def render(o: AdminOutcome | None) -> list[str]:
    if o is None:
        return []
    d = o.dump
    rate = f"{o.rate:g} a second" if o.rate > 0 else "back to back"
    rows = [
        "",
        f"### Admin page at {o.entries:,} entries [{o.config}]",
        "",
        f"{o.entries:,} entries in {o.partitions} partitions, published {BATCH:,} connections "
        f"per request in {o.fill_seconds:.0f} s (worker RSS then {o.rss_mb_after_fill:.0f} MB, "
        f"at most {o.rss_mb_max:.0f} MB while the dump was served). One client process asks "
        f"for `GET /` over and over for {o.seconds:g} s; meanwhile prefix lookups ({rate}, a "
        f"new TCP connection each, {o.timeout:g} s deadline), after {BASELINE_SECONDS:g} s of "
        "lookups alone.",
        "",
        "| GET / requests | statuses | size, bytes (median / max) | time, s (median / max) |",
        "|---:|---|---:|---:|",
        f"| {d.gets} | {', '.join(f'{k}: {v}' for k, v in {**d.statuses, **d.errors}.items())} "
        f"| {d.bytes_median:,} / {d.bytes_max:,} | {d.seconds_median:.3f} / {d.seconds_max:.3f} |",
        "",
        "| lookups | requests | failed | p50 ms | p99 ms | max ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for label, s in (("alone", o.baseline), ("while GET / is served", o.loaded)):
        why = ", ".join(f"{k} {v}" for k, v in s["errors"].items())
        rows.append(
            f"| {label} | {s['requests']:,} | {s['failures']}{f' ({why})' if why else ''} "
            f"| {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} |"
        )
    return rows
