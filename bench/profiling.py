"""``make bench-profile``: where a worker's time goes under load, sampled with py-spy.

One server at its defaults with 100,000 entries; for each scenario, py-spy samples the thread
holding the GIL while wrk drives it, and each sample is charged to the innermost of CATEGORIES
found on its stack. Writes docs/bench/profile.json (bench/run.py --profile).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from load import Bench
from server import SERVICE_APP, prefill, server
from workloads import broad_lines, exact_lines, prefix_lines, publish_lines

# Innermost match wins: a sample is charged to the first of these found walking from the leaf.
CATEGORIES = (
    (
        "validation (JSON parse, checks, pattern compile)",
        ("connection_flask/validation.py", "connection_flask/matching.py"),
    ),
    ("registry (lookup / publish)", ("connection_flask/registry.py", "connection_flask/store/")),
    ("metrics (prometheus-client)", ("connection_flask/metrics.py", "prometheus_client/")),
    ("logging (timing line, access log)", ("logging/__init__.py", "gunicorn/glogging.py")),
    ("endpoint code (api.py, app.py hooks)", ("connection_flask/",)),
    ("Flask / Werkzeug (routing, request, response)", ("flask/", "werkzeug/")),
    ("Gunicorn (HTTP parsing, socket I/O, worker loop)", ("gunicorn/",)),
)


def profile_summary(raw: str, top: int = 12) -> dict[str, Any]:
    """Collapsed stacks from ``py-spy record --format raw`` -> share per category, top leaves."""
    totals: dict[str, int] = {}
    leaves: dict[str, int] = {}
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        category = "other (interpreter, stdlib)"
        for frame in reversed(frames):
            hit = next((c for c, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if hit:
                category = hit
                break
        totals[category] = totals.get(category, 0) + n
        leaf = re.sub(r" \((.*/)?(site-packages/)?", " (", frames[-1])
        leaves[leaf] = leaves.get(leaf, 0) + n
    share = {c: round(100 * n / max(samples, 1), 1) for c, n in totals.items()}
    hottest = sorted(leaves.items(), key=lambda kv: -kv[1])[:top]
    return {
        "samples": samples,
        "categories": dict(sorted(share.items(), key=lambda kv: -kv[1])),
        "leaves": [(f, round(100 * n / max(samples, 1), 1)) for f, n in hottest],
    }


def run_profile(bench: Bench, seconds: int) -> dict[str, Any]:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out: dict[str, Any] = {}
    with server(SERVICE_APP, {}, bench.logdir, "profile") as srv:
        prefill(srv, 100_000)
        for name, lines in (
            ("lookup prefix N=100000", prefix_lines()),
            ("lookup exact N=100000", exact_lines()),
            ("publish 20 conns", publish_lines()),
            ("lookup broad N=100000", broad_lines()),
        ):
            reqfile = bench.logdir / "profile.req"
            reqfile.write_text("\n".join(lines) + "\n")
            rawfile = bench.logdir / "profile.txt"
            spy = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(srv.worker),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "250",
                    "--gil",
                    "--format",
                    "raw",
                    "--output",
                    str(rawfile),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(0.5)
            bench.wrk_run(srv, reqfile, False, seconds)
            _, err = spy.communicate(timeout=seconds + 30)
            if spy.returncode != 0 or not rawfile.exists():
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
            out[name] = profile_summary(rawfile.read_text())
            print(f"== profile: {name}: {json.dumps(out[name], indent=1)}", flush=True)
    return out


def render_profile(profile: dict[str, Any]) -> str:
    parts = []
    for name, p in profile.items():
        parts += [
            "",
            f"**{name}** ({p['samples']} samples of the thread holding the GIL)",
            "",
            "| where the time goes | share |",
            "|---|---:|",
        ]
        parts += [f"| {c} | {v:.1f}% |" for c, v in p["categories"].items()]
        parts += [
            "",
            "Hottest functions (self time): "
            + "; ".join(f"`{f}` {v:.1f}%" for f, v in p["leaves"][:8])
            + ".",
        ]
    return "\n".join(parts)
