"""The groups of ``make bench`` (``--only``): which servers each starts and which scenarios it
measures on them. Registered in GROUPS, run in its order.

  main         publish, lookups at N = 1k/10k/100k, mixed, under the shipped default worker
               class AND under gthread with 2 threads (the previous default) in the same
               rounds, each against the trivial-Flask ceiling of its own worker class
               (bench/lanes.py)
  sweep        worker classes and thread counts, each against its own Flask ceiling
  reliability  2,000 idle + 200 slow-header + 200 slow-body sockets held while a healthy
               client (a new connection per request, 0.5 s deadline) publishes and looks up;
               default server, then gthread 2 threads for reference (bench/reliability.py)
  admin        GET / at 1,000,000 entries while lookups go on (bench/admin_load.py)
  stores       the memory and Redis stores with 1 and 2 workers, in the same rounds
               (bench/stores.py)
  watch        1,000 watches on one partition, one publish, the time until each has its
               answer; memory store, then Redis (bench/watch.py)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import admin_load
import lanes
import reliability
import stores
import watch
import workloads
from load import Bench, Lane, Result, Scenario, Skip, flask_ceiling_name, scenario
from server import SERVICE_APP, Server, prefill, server
from workloads import MIXED_N, SIZES, ceiling_lines


@dataclass
class Knobs:
    """The groups' settings that are not the load driver's (bench/run.py flags)."""

    load: reliability.Load = field(default_factory=reliability.Load)
    admin_entries: int = 1_000_000
    admin_seconds: float = 20.0
    watchers: int = watch.WATCHERS
    watch_rounds: int = watch.ROUNDS


@dataclass
class Measured:
    """What the groups found besides the wrk results (which go to Bench.results)."""

    reliability: list[reliability.Outcome] = field(default_factory=list)
    admin: admin_load.AdminOutcome | None = None
    skipped: list[Skip] = field(default_factory=list)
    watch: list[watch.Outcome] = field(default_factory=list)


Group = Callable[[Bench, Knobs, Measured], None]


# ----------------------------------------------------------------------------- main


def main(bench: Bench, knobs: Knobs, out: Measured) -> None:
    """The main scenarios under the shipped default and, in the same rounds, under the
    reference (gthread 2 threads, the previous default): bench/lanes.py."""
    config = ""

    def bare_step() -> None:
        nonlocal config
        with server("ceiling:wsgi_app", {}, bench.logdir, "ceiling-wsgi") as srv:
            config = lanes.default_config(srv.log.read_text(errors="replace"))
            print(f"== main scenarios ({config}, and {lanes.REFERENCE})", flush=True)
            name = f"ceiling: bare WSGI callable [{config}]"
            r = Result(name, "ceiling", config, 0, None, ceiling=flask_ceiling_name(config))
            bench.measure(srv, r, ceiling_lines())

    bench.step(bare_step)
    # Every server of the group at once (idle ones cost nothing), so that the scenarios
    # and the ceilings can take turns; see Bench.interleaved_lanes().
    with contextlib.ExitStack() as stack:

        def start(app: str, extra: dict[str, str], name: str) -> Server:
            return stack.enter_context(server(app, extra, bench.logdir, name))

        default = main_lane(start, config, {}, "", SIZES)
        reference = main_lane(
            start, lanes.REFERENCE, lanes.REFERENCE_ENV, "ref-", (SIZES[0], SIZES[-1])
        )
        for d, r in zip(default.scenarios, reference.scenarios, strict=True):
            if d is not None and r is not None:
                d.result.versus = r.result.name
        bench.interleaved_lanes([default, reference])


def main_lane(
    start: Callable[[str, dict[str, str], str], Server],
    config: str,
    extra: dict[str, str],
    prefix: str,
    sizes: tuple[int, ...],
) -> Lane:
    """One worker class's servers and scenarios, one slot per scenario of the main group
    (None for a slot it skips: the reference skips N=10k and the broad lookups)."""
    full = not prefix

    def label(name: str) -> str:
        return name if full else lanes.reference_name(name)

    flask = flask_ceiling_name(config)
    ceiling_srv = start("ceiling:flask_app", extra, f"{prefix}ceiling-flask")
    slots: list[Scenario | None] = []
    publisher = start(SERVICE_APP, extra, f"{prefix}publish")
    slots.append(scenario(publisher, workloads.publish(), config, flask, label=label))
    # A new TCP connection per request (the DAQ clients' way) costs the ceiling too:
    # publish with Connection: close is judged against the Flask route likewise,
    # measured just before it in each round.
    close_name = flask_ceiling_name(f"{config}, Connection: close")
    close_ceiling = Result(close_name, "ceiling", config, 0, None, ceiling=flask)
    slots.append(Scenario(ceiling_srv, close_ceiling, ceiling_lines(), close=True))
    slots.append(
        scenario(
            publisher,
            workloads.publish(close=True),
            config,
            close_name,
            label=label,
            close=True,
            against=close_ceiling,
        )
    )
    for n in SIZES:
        srv = None
        if n in sizes:
            srv = start(SERVICE_APP, extra, f"{prefix}lookup-{n}")
            prefill(srv, n)
            rss = srv.rss_mb()
            print(f"  [{config}] worker RSS with {n} entries: {rss:.1f} MB", flush=True)
        for kind in ("exact", "prefix", "broad"):
            if srv is None or (kind == "broad" and not full):
                slots.append(None)
                continue
            s = scenario(srv, workloads.lookup(kind, n), config, flask, label=label)
            s.result.rss_mb = round(rss, 1)
            slots.append(s)
    mixed = start(SERVICE_APP, extra, f"{prefix}mixed")
    prefill(mixed, MIXED_N)
    slots.append(scenario(mixed, workloads.mixed(), config, flask, label=label))
    return Lane(ceiling_srv, Result(flask, "ceiling", config, 0, None), slots)


# ----------------------------------------------------------------------------- sweep


def flask_ceiling(bench: Bench, config: str, extra: dict[str, str], runs: int) -> str:
    """Measure the Flask ceiling on its own (the sweep); return its result's name."""
    flask = flask_ceiling_name(config)

    def flask_step() -> None:
        with server("ceiling:flask_app", extra, bench.logdir, "ceiling-flask") as srv:
            r = Result(flask, "ceiling", config, 0, None)
            bench.measure(srv, r, ceiling_lines(), runs=runs)

    bench.step(flask_step)
    return flask


def sweep(bench: Bench, knobs: Knobs, out: Measured) -> None:
    configs = [
        (f"gthread {t} thread{'s' if t > 1 else ''}", {"CONNECTION_FLASK_THREADS": str(t)})
        for t in (1, 2, 4, 8)
    ]
    configs.append(("gevent", {"CONNECTION_FLASK_WORKER_CLASS": "gevent"}))
    # Not a shipped setting: shows what the access log and the debug-1 timing line cost.
    configs.append(
        (
            "gthread 2 threads, logs off (diagnostic)",
            {"CONNECTION_FLASK_DEBUG": "0", "CONNECTION_FLASK_ACCESS_LOG": ""},
        )
    )
    runs = bench.sweep_runs
    for config, extra in configs:
        print(f"== worker sweep: {config}", flush=True)
        ceiling = flask_ceiling(bench, config, extra, runs)

        def sweep_step(
            config: str = config, extra: dict[str, str] = extra, ceiling: str = ceiling
        ) -> None:
            with server(SERVICE_APP, extra, bench.logdir, "sweep") as srv:
                prefill(srv, MIXED_N)
                for group, work in (
                    ("sweep-publish", workloads.publish()),
                    ("sweep-lookup", workloads.lookup("prefix", MIXED_N)),
                ):

                    def label(name: str) -> str:
                        # Without "keep-alive": the sweep's rows were named before that word.
                        return f"{name.removesuffix(' keep-alive')} [{config}]"

                    s = scenario(srv, work, config, ceiling, label=label, group=group)
                    bench.measure(srv, s.result, s.lines, runs=runs)

        bench.step(sweep_step)


# ----------------------------------------------------------------------------- reliability, admin


def reliability_group(bench: Bench, knobs: Knobs, out: Measured) -> None:
    """The reliability scenario against the default server, then against gthread with 2
    threads (the previous default) for reference; see bench/reliability.py."""
    for extra, ref in (({}, False), (lanes.REFERENCE_ENV, True)):
        with server(SERVICE_APP, extra, bench.logdir, "reliability") as srv:
            log = srv.log.read_text(errors="replace")
            config = lanes.REFERENCE if ref else lanes.default_config(log)
            print(f"== reliability ({config})", flush=True)
            outcome = reliability.run(
                srv.port, srv.worker, config, extra, knobs.load, reference=ref
            )
        outcome.exit_code = srv.proc.returncode
        reliability.report(outcome)
        out.reliability.append(outcome)


def admin(bench: Bench, knobs: Knobs, out: Measured) -> None:
    """GET / on a registry of ``entries`` while lookups go on; see bench/admin_load.py."""
    with server(SERVICE_APP, {}, bench.logdir, "admin") as srv:
        config = lanes.default_config(srv.log.read_text(errors="replace"))
        print(f"== admin page ({config})", flush=True)
        outcome = admin_load.run(
            srv.port, srv.worker, config, entries=knobs.admin_entries, seconds=knobs.admin_seconds
        )
    admin_load.report(outcome)
    out.admin = outcome


def stores_group(bench: Bench, knobs: Knobs, out: Measured) -> None:
    out.skipped += stores.run(bench)


def watch_group(bench: Bench, knobs: Knobs, out: Measured) -> None:
    """Issue 15: watch latency on the memory store, then on the Redis store (a skip with the
    reason when the server does not use it); see bench/watch.py."""
    for store in ("memory", "redis"):
        out.watch.append(watch.run(bench.logdir, store, knobs.watchers, knobs.watch_rounds))


GROUPS: dict[str, Group] = {
    "main": main,
    "sweep": sweep,
    "reliability": reliability_group,
    "admin": admin,
    "stores": stores_group,
    "watch": watch_group,
}


def parse_groups(only: str) -> list[str]:
    """``--only``'s comma-separated groups, in GROUPS' order; ValueError for an unknown one."""
    named = {g.strip() for g in only.split(",") if g.strip()}
    unknown = sorted(named - set(GROUPS))
    if unknown or not named:
        raise ValueError(
            f"--only: unknown group(s) {', '.join(unknown) or '(none named)'}; "
            f"choose from {', '.join(GROUPS)}"
        )
    return [g for g in GROUPS if g in named]


def run_groups(bench: Bench, groups: list[str], knobs: Knobs) -> Measured:
    out = Measured()
    for name in groups:
        GROUPS[name](bench, knobs, out)
    return out


# ----------------------------------------------------------------------------- variants


def variants(bench: Bench, named: list[tuple[str, dict[str, str]]]) -> None:
    """Publish (20 connections, keep-alive) and exact and prefix lookups at N=100k on one
    server per variant, interleaved with the Flask ceiling as the main group is: an A/B test
    of a setting or of another checkout (``PYTHONPATH=/path/to/checkout/service``). Prints;
    writes nothing."""
    with contextlib.ExitStack() as stack:
        ceiling_srv = stack.enter_context(
            server("ceiling:flask_app", {}, bench.logdir, "ceiling-flask")
        )
        config = lanes.default_config(ceiling_srv.log.read_text(errors="replace"))
        flask = flask_ceiling_name(config)
        slots: list[Scenario] = []
        for name, extra in named:

            def label(work: str, name: str = name) -> str:
                return f"{work} [{name}]"

            srv = stack.enter_context(server(SERVICE_APP, extra, bench.logdir, f"v-{name}"))
            work = workloads.publish()
            slots.append(scenario(srv, work, name, flask, label=label, group="variant"))
            n = SIZES[-1]
            looker = stack.enter_context(
                server(SERVICE_APP, extra, bench.logdir, f"v-{name}-lookup")
            )
            prefill(looker, n)
            for kind in ("exact", "prefix"):
                work = workloads.lookup(kind, n)
                slots.append(scenario(looker, work, name, flask, label=label, group="variant"))
        bench.interleaved(ceiling_srv, Result(flask, "ceiling", config, 0, None), slots)


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME`` or ``NAME:VAR=VALUE[,VAR=VALUE...]`` -> (NAME, environment for its server)."""
    name, _, assignments = spec.partition(":")
    env: dict[str, str] = {}
    for item in filter(None, assignments.split(",")):
        var, eq, value = item.partition("=")
        if not eq or not var:
            raise ValueError(f"variant {spec!r}: {item!r} is not VAR=VALUE")
        env[var] = value
    if not name:
        raise ValueError(f"variant {spec!r} has no name")
    return name, env
