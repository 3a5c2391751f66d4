"""The stores group of ``make bench`` (issue 14): the same scenarios on the memory store and on
the Redis store (``CONNECTION_FLASK_STORE=redis://...``), each with 1 and 2 Gunicorn workers.

Each (store, workers) pair is a lane: a trivial-Flask ceiling and the service's servers, all
started with that lane's settings (a redis lane's every server has a private ``redis-server`` of
its own, so their registries stay apart and its CPU is its server's). The lanes take turns in
the same rounds (Bench.interleaved_lanes), so their pairs compare run against run. A lane whose
servers do not come up, or whose server keeps its entries elsewhere than the Redis it was given,
is skipped with the reason in the report: the rest of the group runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import lanes
import workloads
from load import Bench, Lane, Result, Scenario, Skip, flask_ceiling_name, paired_ratio, scenario
from server import SERVICE_APP, Server, ServerFailed, prefill, redis_server, server
from workloads import CONNS_PER_APP, MIXED_N, SIZES

GROUP = "stores"
LANES = (("memory", 1), ("memory", 2), ("redis", 1), ("redis", 2))
N = SIZES[-1]
# Issue 14's targets: Redis with 1 worker at least half the memory store's throughput for
# publish and exact lookup; 2 workers at least 1.25x one worker on the same store.
HALF_OF_MEMORY = ("publish 20 conns keep-alive", f"lookup exact N={N}")
MIN_REDIS_VS_MEMORY, MIN_TWO_VS_ONE = 0.50, 1.25


class StoreIgnored(RuntimeError):
    """A server of a redis lane answered, but its Redis holds nothing after the prefill."""


def config_name(store: str, workers: int) -> str:
    return f"{store}, {workers} worker{'s' if workers > 1 else ''}"


def lane_of(name: str) -> str:
    """The lane in a stores result's name: "lookup exact N=100000 [redis, 1 worker]"."""
    return name.rpartition(" [")[2].removesuffix("]")


def scenario_of(name: str) -> str:
    return name.rpartition(" [")[0]


def run(bench: Bench) -> list[Skip]:
    """Measure every lane that comes up; the ones that do not are returned as skipped."""
    skipped: list[Skip] = []
    with contextlib.ExitStack() as stack:
        ready: list[Lane] = []
        for store, workers in LANES:
            config = config_name(store, workers)
            print(f"== stores: {config}", flush=True)
            with contextlib.ExitStack() as lane_stack:
                try:
                    ready.append(start_lane(lane_stack, bench, store, workers))
                except (ServerFailed, StoreIgnored, FileNotFoundError) as exc:
                    reason = exc.reason if isinstance(exc, ServerFailed) else str(exc)
                    print(f"  skipped: {reason}", flush=True)
                    skipped.append(Skip(GROUP, config, reason))
                    continue
                stack.enter_context(lane_stack.pop_all())  # its servers live on
        if ready:
            bench.interleaved_lanes(ready)
    return skipped


def start_lane(stack: contextlib.ExitStack, bench: Bench, store: str, workers: int) -> Lane:
    config = config_name(store, workers)
    tag = f"stores-{store}-{workers}"
    extra = {"CONNECTION_FLASK_WORKERS": str(workers)}

    def start(app: str, name: str, entries: int) -> Server:
        redis = stack.enter_context(redis_server(bench.logdir, name)) if store == "redis" else None
        srv = stack.enter_context(server(app, extra, bench.logdir, name, store=redis))
        if entries:
            prefill(srv, entries)
        if entries and redis is not None and not redis.keys():
            raise StoreIgnored(
                "the server answered but kept its entries elsewhere: its redis-server holds "
                "no key after the prefill (does it know CONNECTION_FLASK_STORE?)"
            )
        return srv

    def label(name: str) -> str:
        return f"{name} [{config}]"

    flask = flask_ceiling_name(config)
    ceiling_srv = start("ceiling:flask_app", f"{tag}-ceiling", 0)
    # The publisher is given one application first: proof that a redis lane's server uses
    # the Redis it was given (the scenario publishes that application again).
    publisher = start(SERVICE_APP, f"{tag}-publish", CONNS_PER_APP)
    looker = start(SERVICE_APP, f"{tag}-lookup", N)
    mixer = start(SERVICE_APP, f"{tag}-mixed", MIXED_N)
    slots: list[Scenario | None] = [
        scenario(publisher, workloads.publish(), config, flask, label=label, group=GROUP)
    ]
    for kind in ("exact", "prefix"):
        s = scenario(looker, workloads.lookup(kind, N), config, flask, label=label, group=GROUP)
        s.result.rss_mb = round(looker.rss_mb(), 1)
        if looker.store is not None:
            s.result.store_mb = round(looker.store.used_mb(), 1)
        slots.append(s)
    slots.append(scenario(mixer, workloads.mixed(), config, flask, label=label, group=GROUP))
    return Lane(ceiling_srv, Result(flask, "ceiling", config, 0, None), slots)


# ----------------------------------------------------------------------------- report


def pairs() -> list[tuple[str, str, float]]:
    """(lane, the lane it is judged against, the least ratio) for each target."""
    return [
        (config_name("redis", 1), config_name("memory", 1), MIN_REDIS_VS_MEMORY),
        (config_name("redis", 2), config_name("redis", 1), MIN_TWO_VS_ONE),
    ]


def verdicts(results: Sequence[Result]) -> list[tuple[str, str, str, bool]]:
    """Each target whose two lanes were measured: their runs paired round by round."""
    by_name = {r.name: r for r in results if r.group == GROUP}
    out = []
    for mine, theirs, least in pairs():
        for r in by_name.values():
            scenario_name = scenario_of(r.name)
            if lane_of(r.name) != mine:
                continue
            if least == MIN_REDIS_VS_MEMORY and scenario_name not in HALF_OF_MEMORY:
                continue
            twin = by_name.get(f"{scenario_name} [{theirs}]")
            if twin is None:
                continue
            got = lanes.paired_ratio([x.rps for x in r.runs], [x.rps for x in twin.runs])
            out.append(
                (
                    f"{r.name} vs {theirs}",
                    f">= {least:.2f} of {theirs}",
                    "no pairs" if got is None else f"{got:.3f}",
                    got is not None and got >= least,
                )
            )
    return out


def cpu_cell(r: Result) -> str:
    """Server CPU per request, ms: the workers', plus its redis-server's where it has one."""
    m = r.median
    if m.store_cpu_ms_per_req is None:
        return f"{m.cpu_ms_per_req:.3f}"
    return f"{m.cpu_ms_per_req:.3f} + {m.store_cpu_ms_per_req:.3f}"


def render(results: Sequence[Result], skipped: Sequence[Skip]) -> list[str]:
    mine = [r for r in results if r.group == GROUP]
    skips = [s for s in skipped if s.group == GROUP]
    if not mine and not skips:
        return []
    configs = list(dict.fromkeys(lane_of(r.name) for r in mine))
    ceilings = {r.config: r for r in results if r.group == "ceiling" and r.config in configs}
    rows = [
        "",
        f"### Stores: memory and Redis, 1 and 2 workers (N = {N:,} for lookups)",
        "",
        "Each cell: median req/s (x the Flask ceiling of its lane, run by run) and the server's "
        "CPU per request in ms (its workers + its redis-server).",
        "",
        "| scenario | " + " | ".join(configs) + " |",
        "|---|" + "---:|" * len(configs),
    ]
    if ceilings:
        cells = [
            f"{ceilings[c].median.rps:,.0f}; {cpu_cell(ceilings[c])}" if c in ceilings else ""
            for c in configs
        ]
        rows.append("| trivial Flask ceiling | " + " | ".join(cells) + " |")
    by_name = {r.name: r for r in mine}
    for name in dict.fromkeys(scenario_of(r.name) for r in mine):
        cells = []
        for c in configs:
            r = by_name.get(f"{name} [{c}]")
            x = None if r is None else paired_ratio(r)
            shown = "" if x is None else f" (x{x:.2f})"
            cells.append("" if r is None else f"{r.median.rps:,.0f}{shown}; {cpu_cell(r)}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    memory = [
        f"{lane_of(r.name)} {r.store_mb:.0f} MB"
        for r in mine
        if r.store_mb is not None and scenario_of(r.name).startswith("lookup exact")
    ]
    if memory:
        rows += ["", f"Redis used_memory with {N:,} entries: " + ", ".join(memory) + "."]
    if skips:
        rows += ["", "Lanes not measured:", ""]
        rows += [f"- {s.lane}: {s.reason}" for s in skips]
    return rows
