"""Processes the end-to-end tests start: logs to a file, bounded waits, always torn down."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process in its own process group, its stdout and stderr in ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 40.0) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL the whole group. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        # Workers of a master killed hard would be orphans in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log_file.close()
        return self.popen.returncode

    def output(self, tail: int = 200) -> str:
        self._log_file.flush()
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(cannot read {self.log}: {exc})"
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        head = f"$ {' '.join(self.argv)}\n({self.name} {state}; last {tail} lines of {self.log})"
        return "\n".join([head, *lines[-tail:]])


def poll(
    what: str,
    timeout: float,
    probe: Callable[[], Any],
    accept: Callable[[Any], bool],
    *,
    interval: float = 0.25,
) -> Any:
    """Call ``probe`` until ``accept`` takes its value; AssertionError with the last value.

    A probe that raises (connection refused, a failed assertion, a half-written JSON answer)
    counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except (OSError, AssertionError, ValueError) as exc:
            last = exc
        else:
            if accept(last):
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s; last: {last!r}")
        time.sleep(interval)
