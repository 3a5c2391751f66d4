"""The worker-class comparison of ``make bench``'s main group (issue 12).

The main scenarios run on two sets of servers, in the same rounds: the shipped default (no
setting changed: gevent since issue 12) and the reference, gthread with 2 threads (the previous
default). Each set has its own trivial-Flask ceiling under the same worker class, and each
scenario run is compared with its own class's ceiling. Within a round the two runs of a
scenario come one after the other (which goes first alternates between rounds), so
``paired_ratio`` compares them run by run: the machine's drift over the minutes between
rounds cancels out. Target: the default within 10% of the reference, or better.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

REFERENCE = "gthread 2 threads"
REFERENCE_ENV = {"CONNECTION_FLASK_WORKER_CLASS": "gthread", "CONNECTION_FLASK_THREADS": "2"}
MIN_RATIO = 0.90


def worker_class_in(log: str) -> str:
    """The worker class a Gunicorn server's log says it uses ("?" if it does not say)."""
    m = re.search(r"Using worker: (\S+)", log)
    return m.group(1).rpartition(".")[2].removesuffix("Worker").lower() if m else "?"


def default_config(log: str) -> str:
    """The name of the shipped default's configuration, from its server's log."""
    return f"{worker_class_in(log)} (default)"


def reference_name(name: str) -> str:
    """The reference run of a main scenario: its name with the reference's configuration."""
    return f"{name} [{REFERENCE}]"


def paired_ratio(default: Sequence[float], reference: Sequence[float]) -> float | None:
    """Median over the rounds of default req/s over reference req/s, run against run; None if
    the runs do not pair up."""
    if not default or len(default) != len(reference) or not all(reference):
        return None
    return statistics.median(d / r for d, r in zip(default, reference, strict=True))


@dataclass
class Row:
    """One scenario measured under both worker classes."""

    name: str
    default_rps: float  # median req/s
    reference_rps: float
    ratio: float | None  # paired_ratio of their runs
    default_x_ceiling: str  # each against its own worker class's Flask ceiling, formatted
    reference_x_ceiling: str
    judged: bool = True  # a target (the service's scenarios), not a ceiling shown for context


def table(default: str, rows: Sequence[Row]) -> list[str]:
    out = [
        f"| scenario | {default} req/s | {REFERENCE} req/s | {default} / {REFERENCE} "
        f"(median of the rounds' pairs) | met (>= {MIN_RATIO:.2f}) | {default} x its Flask "
        f"ceiling | {REFERENCE} x its Flask ceiling |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        shown = "" if r.ratio is None else f"{r.ratio:.3f}"
        met = ""
        if r.judged and r.ratio is not None:
            met = "yes" if r.ratio >= MIN_RATIO else "**no**"
        out.append(
            f"| {r.name} | {r.default_rps:,.0f} | {r.reference_rps:,.0f} | {shown} | {met} "
            f"| {r.default_x_ceiling} | {r.reference_x_ceiling} |"
        )
    return out
