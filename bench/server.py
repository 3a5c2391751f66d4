"""The servers ``make bench`` measures: the service and its ceilings (bench/ceiling.py) under the
users' Gunicorn command on 127.0.0.1 and a free port, and the private ``redis-server`` a server of
the stores group uses. Every process started here is stopped when its block ends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from workloads import CONNS_PER_APP, DATA_TYPES, PARTITION, connection

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVICE_APP = "connection_flask.wsgi:app"
TICK = os.sysconf("SC_CLK_TCK")
READY_SECONDS = 30


class ServerFailed(RuntimeError):
    """A server exited or never answered; ``reason`` is the last line of its log (a refused
    setting says why there)."""

    def __init__(self, what: str, log: Path) -> None:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
        self.reason = lines[-1].strip() if lines else what
        super().__init__(f"{what}; see {log}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- redis-server


@dataclass
class Store:
    """A private redis-server (no persistence) on 127.0.0.1 and a free port."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def keys(self) -> int:
        return int(self.client().dbsize())

    def used_mb(self) -> float:
        return int(self.client().info("memory")["used_memory"]) / 1024 / 1024


@contextlib.contextmanager
def redis_server(logdir: Path, name: str) -> Iterator[Store]:
    """Start ``redis-server`` on a free port (Redis refuses port 0 for a real listener): the
    port can be taken between the probe and the start, so up to three ports are tried."""
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise FileNotFoundError("redis-server not found (apt-get install redis-server)")
    log = logdir / f"{name}-redis.log"
    for _ in range(3):
        port = free_port()
        cmd = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(logdir)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        store = Store(proc, port)
        if wait_pong(store):
            try:
                yield store
            finally:
                stop(proc)
            return
        stop(proc)
    raise ServerFailed("redis-server did not start on three free ports", log)


def wait_pong(store: Store) -> bool:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and store.proc.poll() is None:
        with contextlib.suppress(redis.RedisError):
            if store.client().ping():
                return True
        time.sleep(0.05)
    return False


# ----------------------------------------------------------------------------- Gunicorn


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    workers: list[int]  # the Gunicorn workers' pids
    log: Path
    store: Store | None = None  # its private redis-server, if it has one

    @property
    def worker(self) -> int:
        """The first worker: the one worker of a server at its default settings."""
        return self.workers[0]

    def post(self, path: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(w) for w in self.workers)

    def rss_mb(self) -> float:
        return sum(rss_mb(w) for w in self.workers)


def server_env(port: int, extra: dict[str, str]) -> dict[str, str]:
    # The shipped defaults for everything not named here: drop whatever the caller has set.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CONNECTION_FLASK_") and k != "ENTRY_TTL"
    }
    env["CONNECTION_FLASK_BIND"] = f"127.0.0.1:{port}"
    env["ENTRY_TTL"] = "3600"  # nothing expires during a run
    env.update(extra)
    return env


@contextlib.contextmanager
def server(
    app: str, extra: dict[str, str], logdir: Path, name: str, *, store: Store | None = None
) -> Iterator[Server]:
    """``app`` under the users' Gunicorn command with the environment ``extra`` (plus
    CONNECTION_FLASK_STORE naming ``store``, if given). Raises ServerFailed if it does not
    come up with its workers."""
    port = free_port()
    log = logdir / f"{name}.log"
    if store is not None:
        extra = {**extra, "CONNECTION_FLASK_STORE": store.url}
    cmd = [sys.executable, "-m", "gunicorn", "--config", "python:connection_flask.gunicorn_conf"]
    cmd += ["--pythonpath", str(BENCH), app]
    with log.open("wb") as out:
        # A session of its own: a signal meant for the benchmark's process group (Ctrl-C is
        # handled by the caller) or for another group never reaches the server by accident.
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(port, extra),
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        workers = wait_ready(proc, port, log, int(extra.get("CONNECTION_FLASK_WORKERS", "1")))
        yield Server(proc, port, workers, log, store)
    finally:
        stop(proc)
    log.unlink()  # reached only if the block succeeded; a failure leaves the log to read


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, workers: int) -> list[int]:
    """The workers' pids once there are ``workers`` of them and the server answers."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"server exited with {proc.returncode}", log)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(children) >= workers:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("POST", "/", b"{}", {"Content-Type": "application/json"})
                conn.getresponse().read()
                conn.close()
                return [int(c) for c in children]
            except OSError:
                pass
        time.sleep(0.1)
    raise ServerFailed(f"server not ready in {READY_SECONDS} s", log)


def prefill(srv: Server, entries: int) -> None:
    """Publish ``entries`` connections: apps of 20, 50 apps (1000 connections) per request."""
    apps = entries // CONNS_PER_APP
    for first in range(0, apps, 50):
        conns = [
            connection(a, c)
            for a in range(first, min(first + 50, apps))
            for c in range(CONNS_PER_APP)
        ]
        status, body = srv.post(
            "/publish", json.dumps({"partition": PARTITION, "connections": conns}).encode()
        )
        if status != 200:
            raise RuntimeError(f"prefill publish answered {status}: {body[:200]!r}")
    status, body = srv.post(
        f"/getconnection/{PARTITION}",
        json.dumps({"uid_regex": ".*", "data_type": "type0"}).encode(),
    )
    held = len(json.loads(body))
    if status != 200 or held != entries // DATA_TYPES:
        raise RuntimeError(f"after prefill, broad lookup gave {status} with {held} entries")
