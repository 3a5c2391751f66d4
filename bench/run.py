"""DAQ load benchmark for connection-flask (``make bench``): the command line.

Starts the service the way users do (``gunicorn --config python:connection_flask.gunicorn_conf
connection_flask.wsgi:app``) on 127.0.0.1 and a free port, fills it, drives it with wrk and
measures, in the same run, a trivial Flask route and a bare WSGI callable under the same command
and settings (bench/ceiling.py). Where things are:

  bench/workloads.py   the requests (publish, lookups, mixed) and the partition sizes
  bench/server.py      starting and stopping servers (and a private redis-server), prefill
  bench/load.py        the wrk driver, Run / Result, interleaving with the ceiling
  bench/scenarios.py   the groups (--only) and what each measures; bench/stores.py: stores
  bench/report.py      targets, verdicts, the generated section of docs/PERFORMANCE.md
  bench/figures.py     --compare and the lookup plot; bench/profiling.py: --profile

Groups (--only, comma-separated; all by default): main, sweep, reliability, admin, stores,
watch
(bench/scenarios.py says what each runs).

Writes docs/bench/results.json, docs/bench/lookup-vs-size.png and the generated section of
docs/PERFORMANCE.md. Every wrk run is bounded (``-d``); every server is stopped on exit.

Knobs (environment or flags): BENCH_QUICK=1 (one 5 s run each, a 12 s hold, 200,000 entries for
the admin page: a smoke test whose results go to $TMPDIR/connection-flask-bench-quick/, never
to docs/; a run of some groups only likewise goes to $TMPDIR/connection-flask-bench-only/),
BENCH_RUNS (default 5), BENCH_DURATION (seconds, default 10), BENCH_ONLY (comma-separated
groups), BENCH_HOLD (reliability hold, seconds), WRK (path to wrk), REDIS_SERVER (path to
redis-server, for the stores group's Redis lanes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import clients
import lanes
import reliability
import scenarios
from figures import compare, plot
from load import Bench, machine
from profiling import render_profile, run_profile
from report import DOC, OUT_DIR, render, results_of, write_doc
from server import ROOT


def render_main(path: Path, *, write: bool) -> int:
    data = json.loads(path.read_text())
    if write and data.get("plot"):
        plot(results_of(data), DOC.parent / data["plot"])
    section = render(data)
    if write:
        write_doc(section)
    print(section)
    return 0


def profile_main(wrk: str, seconds: int, target: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="connection-flask-profile-") as tmp:
        bench = Bench(1, seconds, 0, wrk, Path(tmp))
        profile = run_profile(bench, seconds)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(profile, indent=1) + "\n")
    print(render_profile(profile))
    print(f"wrote {target}")
    return 0


def variants_main(
    variants: list[tuple[str, dict[str, str]]], wrk: str, runs: int, duration: int, warmup: int
) -> int:
    with tempfile.TemporaryDirectory(prefix="connection-flask-bench-") as tmp:
        scenarios.variants(Bench(runs, duration, warmup, wrk, Path(tmp)), variants)
    return 0


def scratch_out(quick: bool) -> Path:
    """Where a run that must not replace the documented results writes them: a quick smoke
    test, or a run of some groups only (the doc section would lose the others' figures)."""
    name = "connection-flask-bench-quick" if quick else "connection-flask-bench-only"
    return Path(tempfile.gettempdir()) / name / "results.json"


def parser(quick: bool) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_RUNS") or ("1" if quick else "5")),
        help="interleaved rounds of the main scenarios",
    )
    ap.add_argument(
        "--sweep-runs",
        type=int,
        default=int(os.environ.get("BENCH_SWEEP_RUNS") or ("1" if quick else "3")),
        help="runs of each worker-sweep scenario",
    )
    ap.add_argument(
        "--duration",
        type=int,
        default=int(os.environ.get("BENCH_DURATION") or ("5" if quick else "10")),
    )
    ap.add_argument("--warmup", type=int, default=1 if quick else 2)
    ap.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY") or ",".join(scenarios.GROUPS),
        help=f"comma-separated groups to run, of: {', '.join(scenarios.GROUPS)} (default: all)",
    )
    rel = reliability.Load()
    ap.add_argument(
        "--hold",
        type=float,
        default=float(os.environ.get("BENCH_HOLD") or (12 if quick else rel.hold)),
        help="reliability: seconds the sockets are held while the healthy client runs\n"
        "(more than the 10 s header and body deadlines, to see the server close them)",
    )
    ap.add_argument("--idle", type=int, default=rel.idle, help="reliability: idle sockets")
    ap.add_argument(
        "--slow-header", type=int, default=rel.slow_header, help="reliability: slow-header sockets"
    )
    ap.add_argument(
        "--slow-body", type=int, default=rel.slow_body, help="reliability: slow-body sockets"
    )
    ap.add_argument(
        "--healthy-rate",
        type=float,
        default=rel.rate,
        help="reliability and admin: the healthy client's requests a second (0: back to back)",
    )
    ap.add_argument(
        "--admin-entries",
        type=int,
        default=200_000 if quick else 1_000_000,
        help="admin: registry size while GET / is served (at most CONNECTION_FLASK_MAX_ENTRIES)",
    )
    ap.add_argument(
        "--admin-seconds",
        type=float,
        default=5 if quick else 20,
        help="admin: seconds of lookups while GET / is requested over and over",
    )
    ap.add_argument(
        "--out",
        type=Path,
        help=f"results file (default {OUT_DIR.relative_to(ROOT)}/results.json; for a quick run,\n"
        f"{scratch_out(True)}; for a run of some groups only,\n{scratch_out(False)})",
    )
    ap.add_argument(
        "--no-doc",
        action="store_true",
        help="do not touch docs/PERFORMANCE.md (implied by BENCH_QUICK and by --only some groups)",
    )
    ap.add_argument(
        "--render",
        type=Path,
        help="only render a results file: print it and (unless --no-doc) rewrite the doc section",
    )
    ap.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="only print a before/after table of two results files",
    )
    ap.add_argument(
        "--variant",
        action="append",
        metavar="NAME[:VAR=VALUE,...]",
        help="only A/B-test publish and exact/prefix lookups at N=100k on servers per variant\n"
        "(repeat), interleaved with the "
        "Flask ceiling; e.g. --variant shipped --variant debug0:CONNECTION_FLASK_DEBUG=0",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="profile the worker with py-spy under load instead; writes docs/bench/profile.json",
    )
    return ap


def main() -> int:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    ap = parser(quick)
    args = ap.parse_args()
    try:
        groups = scenarios.parse_groups(args.only)
    except ValueError as exc:
        ap.error(str(exc))
    scratch = quick or groups != list(scenarios.GROUPS)
    if args.out is None:
        args.out = scratch_out(quick) if scratch else OUT_DIR / "results.json"
    if scratch:
        args.no_doc = True  # a smoke test or a partial run never rewrites docs/PERFORMANCE.md

    if args.compare:
        print(compare(*args.compare))
        return 0
    if args.render:
        return render_main(args.render, write=not args.no_doc)
    wrk = os.environ.get("WRK") or shutil.which("wrk")
    if not wrk:
        print("wrk not found: apt-get install wrk (Debian/Ubuntu)", file=sys.stderr)
        return 2

    if args.profile:
        return profile_main(wrk, args.duration, args.out.parent / "profile.json")
    if args.variant:
        try:
            variants = [scenarios.parse_variant(v) for v in args.variant]
        except ValueError as exc:
            ap.error(str(exc))
        return variants_main(variants, wrk, args.runs, args.duration, args.warmup)

    return bench_main(args, wrk, groups, quick)


def bench_main(args: argparse.Namespace, wrk: str, groups: list[str], quick: bool) -> int:
    """Run ``groups``, write the results file and (unless told not to) the doc section."""
    # Thousands of sockets in the reliability group; the servers started from here inherit it.
    clients.raise_nofile()
    knobs = scenarios.Knobs(
        reliability.Load(
            hold=args.hold,
            idle=args.idle,
            slow_header=args.slow_header,
            slow_body=args.slow_body,
            rate=args.healthy_rate,
        ),
        args.admin_entries,
        args.admin_seconds,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="connection-flask-bench-") as tmp:
        bench = Bench(
            args.runs, args.duration, args.warmup, wrk, Path(tmp), sweep_runs=args.sweep_runs
        )
        try:
            measured = scenarios.run_groups(bench, groups, knobs)
        except Exception:
            # Keep the server logs of the failed step for a look.
            keep = Path(tempfile.mkdtemp(prefix="connection-flask-bench-failed-"))
            for f in Path(tmp).iterdir():
                shutil.copy(f, keep)
            print(f"benchmark failed; logs kept in {keep}", file=sys.stderr)
            raise
    wall = time.monotonic() - started

    argv = " ".join(sys.argv[1:])
    data: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"python bench/run.py {argv}".strip() + (" (BENCH_QUICK=1)" if quick else ""),
        "runs": args.runs,
        "sweep_runs": args.sweep_runs,
        "duration": args.duration,
        "warmup": args.warmup,
        "wall_seconds": round(wall),
        "groups": groups,
        "machine": machine(),
        "server_command": "gunicorn --config python:connection_flask.gunicorn_conf "
        "connection_flask.wsgi:app",
        "server_env": "CONNECTION_FLASK_BIND=127.0.0.1:<free port>, ENTRY_TTL=3600 (the "
        f"{lanes.REFERENCE} servers add "
        + ", ".join(f"{k}={v}" for k, v in lanes.REFERENCE_ENV.items())
        + ")",
        "results": [asdict(r) for r in bench.results],
        "reliability": [asdict(o) for o in measured.reliability],
        "admin": asdict(measured.admin) if measured.admin else None,
        "skipped": [asdict(s) for s in measured.skipped],
        "watch": [asdict(o) for o in measured.watch],
    }
    png = args.out.parent / "lookup-vs-size.png"
    if "main" in groups and plot(bench.results, png):
        data["plot"] = os.path.relpath(png, DOC.parent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    section = render(data)
    if not args.no_doc:
        write_doc(section)
    print(section)
    print(f"wrote {args.out}" + ("" if args.no_doc else f" and {DOC}"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
