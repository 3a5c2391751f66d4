"""Watch latency (issue 15): 1,000 watches wait on one partition of a real server (the default
gevent worker, on loopback), one publish changes it, and each watch's time from just before the
publish is sent until its whole answer has arrived is recorded; p50, p99 and the last of each
round are printed, with the median over rounds.

Standalone, not (yet) part of ``make bench``: ``python bench/watch.py [--watchers 1000]
[--rounds 5]``. The watches are raw asyncio connections that parse nothing but the header's
end and Content-Length, so the client adds little to what is measured. Every server it starts
is stopped on exit; it talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTITION = "watch"
CONNS = 20  # one DAQ application's connections


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int, method: str, path: str, body: bytes = b""
) -> tuple[int, bytes, dict[str, str]]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def publish_body(generation: int) -> bytes:
    connections = [
        {
            "uid": f"app-{i:02}",
            "uri": f"tcp://10.0.0.1:{10000 + generation * CONNS + i}",
            "data_type": "TPSet",
            "connection_type": 0,
        }
        for i in range(CONNS)
    ]
    return json.dumps({"partition": PARTITION, "connections": connections}).encode()


def watching(port: int) -> int:
    _, body, _ = request(port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("connection_flask_watches "):
            return int(float(line.split()[1]))
    raise RuntimeError("no connection_flask_watches gauge")


class Watch(asyncio.Protocol):
    """One watch on its own connection: sends the request, notes when the answer is whole."""

    def __init__(self, request: bytes, done: asyncio.Future[float]) -> None:
        self.request = request
        self.done = done
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep or self.done.done():
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) >= length:
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                self.done.set_exception(RuntimeError(f"watch answered {status}: {rest[:200]!r}"))
            else:
                self.done.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"connection lost before the answer: {exc}"))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(master: int) -> int:
    [child] = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(child)


async def one_round(
    port: int, watchers: int, generation: int, worker: int
) -> tuple[list[float], float]:
    """Each watch's seconds from the publish to its answer, and the server's CPU seconds."""
    loop = asyncio.get_running_loop()
    _, _, headers = request(port, "GET", f"/api/v1/partitions/{PARTITION}/connections?limit=1")
    index = headers["X-Registry-Index"]
    req = (
        f"GET /api/v1/partitions/{PARTITION}/connections?index={index}&wait=60s HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
    ).encode()
    futures: list[asyncio.Future[float]] = []
    transports = []
    for _ in range(watchers):
        done: asyncio.Future[float] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda d=done: Watch(req, d),  # type: ignore[misc]
            "127.0.0.1",
            port,
        )
        futures.append(done)
        transports.append(transport)
    deadline = time.monotonic() + 60
    while await asyncio.to_thread(watching, port) < watchers:
        if time.monotonic() > deadline:
            raise RuntimeError("the watches never all waited")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # quiet before the publish
    cpu = cpu_seconds(worker)
    sent = time.perf_counter()
    status, _, _ = await asyncio.to_thread(
        request, port, "POST", "/publish", publish_body(generation)
    )
    if status != 200:
        raise RuntimeError(f"publish answered {status}")
    answered = await asyncio.wait_for(asyncio.gather(*futures), 60)
    cpu = cpu_seconds(worker) - cpu
    for transport in transports:
        transport.close()
    return sorted(t - sent for t in answered), cpu


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, args.watchers * 2 + 100)), hard)
    )
    port = free_port()
    env = {
        **os.environ,
        "CONNECTION_FLASK_BIND": f"127.0.0.1:{port}",
        "CONNECTION_FLASK_ACCESS_LOG": "",
        "CONNECTION_FLASK_DEBUG": "0",
        "CONNECTION_FLASK_DRAIN_SECONDS": "0",
        "CONNECTION_FLASK_MAX_WATCHES": str(args.watchers),
    }
    log = Path(tempfile.mkdtemp(prefix="connection-flask-watch-")) / "server.log"
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:connection_flask.gunicorn_conf"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "connection_flask.wsgi:app"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.1)
        request(port, "POST", "/publish", publish_body(0))
        worker = worker_pid(proc.pid)
        summary = []
        for generation in range(1, args.rounds + 1):
            times, cpu = asyncio.run(one_round(port, args.watchers, generation, worker))
            row = [percentile(times, 50), percentile(times, 99), times[-1], cpu]
            summary.append(row)
            print(
                f"round {generation}: {len(times)} watchers  p50 {row[0] * 1e3:.1f} ms  "
                f"p99 {row[1] * 1e3:.1f} ms  last {row[2] * 1e3:.1f} ms  "
                f"server CPU {cpu * 1e3:.0f} ms",
                flush=True,
            )
        medians = [statistics.median(column) * 1e3 for column in zip(*summary, strict=True)]
        print(
            f"median of {args.rounds} rounds: p50 {medians[0]:.1f} ms  p99 {medians[1]:.1f} ms  "
            f"last {medians[2]:.1f} ms  server CPU {medians[3]:.0f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
