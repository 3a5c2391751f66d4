"""The load driver of ``make bench``: wrk runs against a server, their measurements (``Run``,
``Result``) and the interleaving of scenario runs with the runs of a ceiling (``Bench``).

wrk (``-t2 -c16``) cycles through a request file with bench/lua/requests.lua and prints one
``BENCH_JSON`` summary line; the server's CPU (its workers', and its redis-server's apart) is read
from /proc around each run, and so is the CPU the rest of the machine used meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from server import BENCH, TICK, Server
from workloads import Workload, ceiling_lines

LUA = BENCH / "lua" / "requests.lua"
CONNECTIONS, THREADS = 16, 2  # wrk -c / -t, as the issue asks
NCPU = os.cpu_count() or 1


def machine_busy() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    rps: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_req: float
    # CPU used during the run by anything but this worker and wrk (other processes on the
    # machine), as a share of all CPUs: a run with much of it is disturbed.
    other_cpu: float = 0.0
    # The Flask ceiling around this run: the mean of the ceiling runs just before and just
    # after it (main scenarios only; see Bench.interleaved).
    ceiling_rps: float | None = None
    # The CPU of the server's redis-server per request (the stores group's redis lanes).
    store_cpu_ms_per_req: float | None = None


@dataclass
class Result:
    name: str
    group: str
    config: str
    entries: int
    results_per_request: int | None
    runs: list[Run] = field(default_factory=list)
    rss_mb: float | None = None
    ceiling: str | None = None  # the name of the Flask ceiling result it is compared with
    # The same scenario's result under the reference worker class (bench/lanes.py), measured
    # in the same rounds: the default's runs are compared with it round by round.
    versus: str | None = None
    store_mb: float | None = None  # its redis-server's used_memory after the prefill

    @property
    def median(self) -> Run:
        ordered = sorted(self.runs, key=lambda r: r.rps)
        return ordered[(len(ordered) - 1) // 2]


def flask_ceiling_name(config: str) -> str:
    return f"ceiling: trivial Flask POST [{config}]"


def paired_ratio(result: Result) -> float | None:
    """Median over the runs of req/s against the ceiling measured around each run, or None if
    the runs were not interleaved with the ceiling."""
    pairs = [r.rps / r.ceiling_rps for r in result.runs if r.ceiling_rps]
    if not pairs or len(pairs) != len(result.runs):
        return None
    return statistics.median(pairs)


@dataclass
class Scenario:
    server: Server
    result: Result
    lines: list[str]
    close: bool = False
    # Judge each run against this earlier scenario's run of the same round instead of the
    # ceiling runs around it (publish with Connection: close against the ceiling likewise).
    against: Result | None = None


def scenario(
    srv: Server,
    work: Workload,
    config: str,
    ceiling: str,
    *,
    label: Callable[[str], str] = str,
    group: str | None = None,
    close: bool = False,
    against: Result | None = None,
) -> Scenario:
    """``work`` on ``srv``: its result named ``label(work.name)``, judged against ``ceiling``."""
    r = Result(label(work.name), group or work.group, config, work.entries, work.found)
    r.ceiling = ceiling
    return Scenario(srv, r, work.lines, close, against)


@dataclass
class Skip:
    """A lane of a group that could not be measured, and why (its server's last words)."""

    group: str
    lane: str
    reason: str


@dataclass
class Lane:
    """The servers of one worker class in the main group: its Flask ceiling and its scenarios,
    slot by slot (None where it skips a slot; see Bench.interleaved_lanes)."""

    ceiling_srv: Server
    ceiling: Result
    scenarios: list[Scenario | None]


class Bench:
    def __init__(
        self, runs: int, duration: int, warmup: int, wrk: str, logdir: Path, *, sweep_runs: int = 3
    ) -> None:
        self.runs, self.duration, self.warmup, self.wrk, self.logdir = (
            runs,
            duration,
            warmup,
            wrk,
            logdir,
        )
        self.sweep_runs = sweep_runs
        self.results: list[Result] = []

    def wrk_run(self, srv: Server, reqfile: Path, close: bool, seconds: int) -> dict[str, Any]:
        cmd = [
            self.wrk,
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{srv.port}",
            "--",
            str(reqfile),
            "close" if close else "keep-alive",
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 30, check=True
        ).stdout
        m = re.search(r"^BENCH_JSON (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk printed no summary:\n{out}")
        return dict(json.loads(m.group(1)))

    def request_file(self, result: Result, lines: list[str]) -> Path:
        reqfile = self.logdir / f"{result.name.replace(' ', '_').replace('/', '_')}.req"
        reqfile.write_text("\n".join(lines) + "\n")
        return reqfile

    def one_run(self, srv: Server, reqfile: Path, close: bool) -> Run:
        store = srv.store
        cpu0, busy0, wrk0 = srv.cpu_seconds(), machine_busy(), children_cpu()
        store0 = store.cpu_seconds() if store else 0.0
        s = self.wrk_run(srv, reqfile, close, self.duration)
        cpu = srv.cpu_seconds() - cpu0
        store_cpu = store.cpu_seconds() - store0 if store else 0.0
        busy, wrk_cpu = machine_busy() - busy0, children_cpu() - wrk0
        other = max(busy - cpu - store_cpu - wrk_cpu, 0.0) / (s["duration_us"] / 1e6) / NCPU
        n = max(int(s["requests"]), 1)
        errors = sum(int(v) for k, v in s.items() if k.startswith("errors_"))
        return Run(
            rps=round(n / (s["duration_us"] / 1e6), 1),
            requests=n,
            p50_ms=s["p50_us"] / 1000,
            p90_ms=s["p90_us"] / 1000,
            p99_ms=s["p99_us"] / 1000,
            errors=errors,
            cpu_ms_per_req=round(cpu * 1000 / n, 4),
            other_cpu=round(other, 3),
            store_cpu_ms_per_req=round(store_cpu * 1000 / n, 4) if store else None,
        )

    def report(self, result: Result) -> None:
        med = result.median
        runs = [r.rps for r in result.runs]
        paired = paired_ratio(result)
        print(
            f"  {result.name:<44} {med.rps:>9.1f} req/s  p50 {med.p50_ms:7.2f} ms  "
            f"p99 {med.p99_ms:7.2f} ms  cpu {med.cpu_ms_per_req:.3f} ms/req  "
            f"errors {med.errors}  other CPU {max(r.other_cpu for r in result.runs):.0%}  "
            + (f"x ceiling {paired:.2f}  " if paired is not None else "")
            + (f"runs {runs}" if len(runs) <= 6 else f"{len(runs)} runs {min(runs)}-{max(runs)}"),
            flush=True,
        )

    def measure(
        self,
        srv: Server,
        result: Result,
        lines: list[str],
        *,
        close: bool = False,
        runs: int | None = None,
    ) -> Result:
        reqfile = self.request_file(result, lines)
        if self.warmup:
            self.wrk_run(srv, reqfile, close, self.warmup)
        for _ in range(runs or self.runs):
            result.runs.append(self.one_run(srv, reqfile, close))
        reqfile.unlink()
        self.report(result)
        self.results.append(result)
        return result

    def interleaved(self, ceiling_srv: Server, ceiling: Result, scenarios: list[Scenario]) -> None:
        """Measure each scenario between two runs of the Flask ceiling, round after round:
        C s1 C s2 C ... sK C, repeated ``runs`` times. Each scenario run is compared with the
        mean of the ceiling runs on either side of it, so a machine whose speed drifts over
        the minutes a benchmark takes (a shared VM does) moves both sides of the ratio alike."""
        self.interleaved_lanes([Lane(ceiling_srv, ceiling, list(scenarios))])

    def interleaved_lanes(self, lanes_: list[Lane]) -> None:
        """interleaved() for several lanes (a worker class each, with its own ceiling) whose
        scenarios line up slot by slot (None: the lane skips that slot). In each slot every
        lane runs its scenario, then every lane that did runs its ceiling: with lanes A and B,
        CA CB a1 b1 CA CB a2 b2 CA CB ...; which lane goes first alternates between rounds."""
        width = len(lanes_[0].scenarios)
        if any(len(lane.scenarios) != width for lane in lanes_):
            raise ValueError("lanes must have the same number of slots")
        creqs = [self.request_file(lane.ceiling, ceiling_lines()) for lane in lanes_]
        files = [
            [None if s is None else self.request_file(s.result, s.lines) for s in lane.scenarios]
            for lane in lanes_
        ]
        if self.warmup:
            for lane, creq, row in zip(lanes_, creqs, files, strict=True):
                self.wrk_run(lane.ceiling_srv, creq, False, self.warmup)
                for s, f in zip(lane.scenarios, row, strict=True):
                    if s is not None and f is not None:
                        self.wrk_run(s.server, f, s.close, self.warmup)
        for round_ in range(1, self.runs + 1):
            print(f"  round {round_} of {self.runs}", flush=True)
            order = list(range(len(lanes_)))
            if round_ % 2 == 0:
                order.reverse()
            before: dict[int, Run] = {}
            for li in order:
                before[li] = self.one_run(lanes_[li].ceiling_srv, creqs[li], False)
                lanes_[li].ceiling.runs.append(before[li])
            for slot in range(width):
                ran: list[tuple[int, Scenario, Run]] = []
                for li in order:
                    s, f = lanes_[li].scenarios[slot], files[li][slot]
                    if s is not None and f is not None:
                        ran.append((li, s, self.one_run(s.server, f, s.close)))
                for li, s, run in ran:
                    after = self.one_run(lanes_[li].ceiling_srv, creqs[li], False)
                    lanes_[li].ceiling.runs.append(after)
                    run.ceiling_rps = round((before[li].rps + after.rps) / 2, 1)
                    if s.against is not None:
                        if len(s.against.runs) != round_:
                            raise ValueError(f"{s.result.name}: its reference must come before it")
                        run.ceiling_rps = s.against.runs[-1].rps
                    s.result.runs.append(run)
                    before[li] = after
        for f in [*creqs, *(f for row in files for f in row)]:
            if f is not None:
                f.unlink()
        measured = [lane.ceiling for lane in lanes_]
        measured += [s.result for lane in lanes_ for s in lane.scenarios if s is not None]
        for result in measured:
            self.report(result)
            self.results.append(result)

    def step(self, fn: Callable[[], None]) -> None:
        """Run one server's worth of scenarios; if its server died under it (killed from
        outside: the machine is shared), drop that attempt's results and run it once more."""
        for attempt in (1, 2):
            kept = len(self.results)
            try:
                fn()
                return
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                del self.results[kept:]
                if attempt == 2:
                    raise
                print(f"  step failed ({exc!r}); retrying it once", flush=True)


def machine() -> dict[str, str]:
    def run(*cmd: str) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError:
            return ""
        return done.stdout + done.stderr

    lscpu = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in run("lscpu").splitlines())
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    packages = ", ".join(
        f"{p} {version(p)}"
        for p in (
            "flask",
            "werkzeug",
            "gunicorn",
            "gevent",
            "google-re2",
            "orjson",
            "prometheus-client",
            "msgspec",
            "redis",
            "hiredis",
        )
        if installed(p)
    )
    redis_server = run(os.environ.get("REDIS_SERVER") or "redis-server", "--version").split()
    wrk = run("wrk", "--version").splitlines()
    os_name = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.partition("=")[2].strip('"')
    return {
        "cpu": f"{lscpu.get('Model name', '?')} ({lscpu.get('Hypervisor vendor', 'bare metal')}"
        f" guest)"
        if lscpu.get("Hypervisor vendor")
        else lscpu.get("Model name", "?"),
        "cores": f"{lscpu.get('CPU(s)', '?')} CPUs ({lscpu.get('Thread(s) per core', '?')} "
        f"thread(s) per core)",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "packages": packages,
        "wrk": wrk[0].split(" [")[0] if wrk else "?",
        # "Redis server v=7.0.15 sha=... malloc=jemalloc-5.3.0 bits=64 build=..."
        "redis_server": " ".join(redis_server[:3]).replace("v=", ""),
    }


def installed(package: str) -> bool:
    try:
        version(package)
    except PackageNotFoundError:
        return False
    return True
