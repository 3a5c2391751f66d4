"""The Gunicorn master's side of Prometheus multiprocess mode.

With several workers each one counts its own requests; /metrics must report the pod's total
whichever worker answers the scrape. prometheus_client does that with one directory of memory-mapped
files that every worker writes its values to (PROMETHEUS_MULTIPROC_DIR) and that a scrape reads
all of (connection_flask.metrics). The client decides at import whether its values go to those
files, so the master sets the variable before it forks any worker and imports nothing of
prometheus_client itself before then: this module must not either.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(
    workers: int, tmp_dir: str | None, log: Any, environ: MutableMapping[str, str] = os.environ
) -> str | None:
    """Make the directory ready before Gunicorn forks; return it when this created it (the
    caller removes it at exit), None otherwise.

    PROMETHEUS_MULTIPROC_DIR given (the Helm chart's emptyDir): used with any worker count, its
    files from an earlier run removed: counts of processes gone with another master would be
    added to this one's. Not given and more than one worker: a fresh directory under tmp_dir
    (the worker tmp dir, else the system's). Not given and one worker: none, the one process's
    registry is exact.
    """
    given = environ.get(ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        # Only the client's own files: the directory may be shared with anything.
        for path in glob.glob(os.path.join(given, "*.db")):
            os.remove(path)
        created = None
    elif workers > 1:
        created = given = tempfile.mkdtemp(prefix="connection-flask-metrics-", dir=tmp_dir)
        environ[ENV] = given
    else:
        return None
    if "prometheus_client" in sys.modules:  # e.g. --preload: the app was built before this ran
        log.warning(
            "prometheus_client was imported before %s was set: each worker's /metrics shows "
            "its own counts only; do not preload the app",
            ENV,
        )
    log.info("Prometheus multiprocess mode: %d worker(s) write their metrics in %s", workers, given)
    return created


def mark_dead(pid: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """Drop a dead worker's live-gauge files; its counters stay in the pod's totals, as they must
    (a counter that went down would read as a reset)."""
    path = environ.get(ENV)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def remove(created: str | None) -> None:
    if created:
        shutil.rmtree(created, ignore_errors=True)
