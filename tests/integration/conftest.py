"""Real servers on loopback: each test starts Gunicorn (or `make run`) on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process started in its own process group, its output kept in a file."""

    def __init__(
        self, argv: Sequence[str], *, port: int, env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


class Starter:
    """start(argv, env=..., cwd=..., port=..., ready=...) -> a (ready) Server, its log in
    ``directory``; ``stop_all`` kills every server it started."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: list[Server] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        ready: bool = True,
    ) -> Server:
        port = port or free_port()
        # No drain on SIGTERM: these tests stop many servers and test nothing about shutdown.
        full_env = {
            "CONNECTION_FLASK_BIND": f"127.0.0.1:{port}",
            "CONNECTION_FLASK_DRAIN_SECONDS": "0",
            **(env or {}),
        }
        log = self.directory / f"server-{len(self.servers)}.log"
        server = Server(
            [a.replace("{port}", str(port)) for a in argv],
            port=port,
            env=full_env,
            cwd=cwd or self.directory,
            log=log,
        )
        self.servers.append(server)
        if ready:
            server.wait_ready()
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            # The tests are over and nothing reads what the server does next: kill it rather
            # than wait for a stop (a gevent worker takes up to a second to notice one).
            server.stop(signal.SIGKILL)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Starter]:
    """start_server(argv, env=..., cwd=...) -> a ready Server; every server is stopped after."""
    starter = Starter(tmp_path)
    yield starter
    starter.stop_all()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starter]:
    """start_server for servers that several tests of a module share (each test must then leave
    the server as it found it); stopped after the module."""
    starter = Starter(tmp_path_factory.mktemp("servers"))
    yield starter
    starter.stop_all()
