"""Instructions per request through the WSGI app, counted by valgrind (``make bench-instructions``).

Wall-clock figures on a shared VM drift by 20-30% within minutes; an instruction count does not
(callgrind gives the same total for the same binary and inputs whatever else the machine does).
So a change to the request path is judged here first, then confirmed by ``make bench``.

For each scenario this runs the interpreter twice under ``valgrind --tool=callgrind``: once
building the app and warming it up, once doing the same plus N requests; the difference over N
is the cost of one request in the app and Flask (not Gunicorn, not the kernel). The app logs
through a handler set up as Gunicorn's error log is (format and date format), to /dev/null.

    python bench/instructions.py                 # every scenario, 1000 requests each
    python bench/instructions.py publish lookup  # some of them
    CONNECTION_FLASK_DEBUG=0 python bench/instructions.py lookup   # without the timing line
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SCENARIOS = ("ceiling", "publish", "lookup")


def _environ(path: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _drive(app: Callable[..., Iterable[bytes]], path: str, bodies: list[bytes], n: int) -> None:
    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{path} answered {status}")

    for i in range(n):
        for _ in app(_environ(path, bodies[i % len(bodies)]), start_response):
            pass


def inner(scenario: str, requests: int) -> None:
    """Build the apps, warm every path up, then send ``requests`` requests of one scenario."""
    sys.path.insert(0, str(BENCH))
    import ceiling
    import workloads

    # As under Gunicorn: the app copies the handlers of the "gunicorn.error" logger.
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as we do)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "[%Y-%m-%d %H:%M:%S %z]"
        )
    )
    logging.getLogger("gunicorn.error").addHandler(handler)
    from connection_flask.app import create_app

    app = create_app()
    publishes = [workloads.publish_body(a).encode() for a in range(workloads.APPS)]
    lookups = [line.partition("\t")[2].encode() for line in workloads.prefix_lines()]
    targets = {
        "ceiling": (ceiling.flask_app, "/", lookups),
        "publish": (app, "/publish", publishes),
        "lookup": (app, "/getconnection/bench", lookups),
    }
    for name in SCENARIOS:  # the registry filled, caches warm, every code path loaded
        target, path, bodies = targets[name]
        _drive(target, path, bodies, len(bodies))
    target, path, bodies = targets[scenario]
    _drive(target, path, bodies, requests)


def collected(scenario: str, requests: int, valgrind: str) -> int:
    done = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--inner",
            scenario,
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"Collected : (\d+)", done.stderr)
    if not m:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]}")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=" | ".join(SCENARIOS))
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--inner", nargs=2, metavar=("SCENARIO", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.inner[0], int(args.inner[1]))
        return 0
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    valgrind = shutil.which("valgrind")
    if not valgrind:
        print("valgrind not found: apt-get install valgrind", file=sys.stderr)
        return 2
    debug = os.environ.get("CONNECTION_FLASK_DEBUG", "1 (default)")
    print(f"instructions per request, {args.requests} requests, CONNECTION_FLASK_DEBUG={debug}")
    for scenario in args.scenarios or SCENARIOS:
        base = collected(scenario, 0, valgrind)
        total = collected(scenario, args.requests, valgrind)
        print(f"  {scenario:<8} {(total - base) / args.requests:>10,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
