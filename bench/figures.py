"""Views of results files beside the doc's section: ``compare`` (a before/after table of two
results files, ``bench/run.py --compare``) and ``plot`` (lookup throughput and p99 against the
partition size, docs/bench/lookup-vs-size.png).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from load import CONNECTIONS, THREADS, Result
from report import ratio, results_of
from workloads import SIZES


def load_results(path: Path) -> list[Result]:
    return results_of(json.loads(path.read_text()))


def compare(before_path: Path, after_path: Path) -> str:
    """Markdown table of the main scenarios in two results files (before / after a change)."""
    before, after = load_results(before_path), load_results(after_path)
    b_by, a_by = {r.name: r for r in before}, {r.name: r for r in after}
    rows = [
        "| scenario | before req/s | before x Flask | before CPU ms/req | after req/s "
        "| after x Flask | after CPU ms/req | before p99 ms | after p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in after:
        old = b_by.get(r.name)
        if old is None or r.group not in ("ceiling", "publish", "lookup", "mixed"):
            continue
        br, ar = ratio(old, b_by), ratio(r, a_by)
        rows.append(
            f"| {r.name} | {old.median.rps:,.0f} | {'' if br is None else f'{br:.2f}'} "
            f"| {old.median.cpu_ms_per_req:.3f} | {r.median.rps:,.0f} "
            f"| {'' if ar is None else f'{ar:.2f}'} | {r.median.cpu_ms_per_req:.3f} "
            f"| {old.median.p99_ms:.1f} | {r.median.p99_ms:.1f} |"
        )
    rss_b = b_by.get("lookup exact N=100000")
    rss_a = a_by.get("lookup exact N=100000")
    if rss_b and rss_a:
        rows += [
            "",
            f"Worker RSS with 100k entries: {rss_b.rss_mb:.0f} MB before, "
            f"{rss_a.rss_mb:.0f} MB after.",
        ]
    return "\n".join(rows)


def plot(results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return False
    by_name = {r.name: r for r in results}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, marker in (("exact", "o"), ("prefix", "s"), ("broad", "^")):
        pts = [
            (n, by_name[f"lookup {kind} N={n}"]) for n in SIZES if f"lookup {kind} N={n}" in by_name
        ]
        if not pts:
            continue
        xs = [n for n, _ in pts]
        ax1.plot(xs, [r.median.rps for _, r in pts], marker=marker, label=kind)
        ax2.plot(xs, [r.median.p99_ms for _, r in pts], marker=marker, label=kind)
    exact = by_name.get(f"lookup exact N={SIZES[0]}")
    ceiling = by_name.get(exact.ceiling or "") if exact else None
    if ceiling:
        ax1.axhline(ceiling.median.rps, color="grey", linestyle="--", label="trivial Flask route")
    for ax, ylabel in ((ax1, "requests/s (median of runs)"), (ax2, "p99 latency, ms")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("live entries in the partition")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax1.set_title("Lookup throughput")
    ax2.set_title("Lookup p99 latency")
    config = exact.config if exact else "?"
    fig.suptitle(f"connection-flask, 1 Gunicorn worker, {config}, wrk -t{THREADS} -c{CONNECTIONS}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
