"""The client side of ``make bench``'s reliability and admin scenarios, as a library.

- ``request``: one HTTP/1.1 request on a NEW TCP connection with one overall deadline, the way
  the C++ DAQ client (a connection per request) and drunc's client (0.5 s timeout) talk.
- ``run_clients``: ``request`` in a loop at a fixed rate, every latency and outcome recorded.
- ``percentile`` / ``latency_summary`` / ``timeline``: pure arithmetic on those records.
- ``child`` / ``result``: start a client process (bench/stress_clients.py) and read its answer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import resource
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def raise_nofile() -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An unlimited hard limit cannot be a soft one: the soft limit then stays.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_mb(pid: int) -> float:
    """A process's resident set size, MB (a server's worker, say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds(pid: int) -> int:
    """A process's open file descriptors."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


# ----------------------------------------------------------------------------- arithmetic


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or
    below it (p100 is the maximum). 0.0 for no values."""
    if not values:
        return 0.0
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


@dataclass
class Sample:
    """One request of a client loop: when it started (seconds into the loop), what it was,
    how long it took until its answer or its failure, and why it failed ("" if it did not)."""

    at: float
    kind: str
    seconds: float
    error: str = ""


def latency_summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """Requests, failures (with their reasons) and p50/p99/max latency in ms, failed requests
    included at the time they took to fail (a timeout counts as the timeout)."""
    ms = [s.seconds * 1000 for s in samples]
    errors: dict[str, int] = {}
    for s in samples:
        if s.error:
            errors[s.error] = errors.get(s.error, 0) + 1
    return {
        "requests": len(samples),
        "failures": sum(errors.values()),
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms, default=0.0), 2),
    }


def timeline(samples: Sequence[Sample], step: float = 1.0) -> list[list[float]]:
    """Per ``step`` seconds of the loop: [start, requests, failures, max ms]."""
    buckets: dict[int, list[float]] = {}
    for s in samples:
        b = buckets.setdefault(int(s.at // step), [0, 0, 0.0])
        b[0] += 1
        b[1] += 1 if s.error else 0
        b[2] = max(b[2], round(s.seconds * 1000, 1))
    return [[k * step, *v] for k, v in sorted(buckets.items())]


def status_of(reply: bytes) -> str:
    """The status code of an HTTP response's first bytes ("none" for no reply, "?" for
    something else)."""
    if not reply:
        return "none"
    parts = reply.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:3].isdigit():
        return parts[1][:3].decode()
    return "?"


# ----------------------------------------------------------------------------- one request


def raw_request(method: str, path: str, port: int, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def parse_head(head: bytes) -> tuple[int, int | None]:
    """(status, Content-Length or None) of a response head (without its blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return int(parts[1]), length


def request(port: int, raw: bytes, timeout: float) -> tuple[int, bytes]:
    """Send ``raw`` on a new connection to 127.0.0.1:port and read the whole response, all
    within ``timeout`` seconds; (status, body). Raises TimeoutError past the deadline, OSError
    on a refused or reset connection, ValueError on a response that is not HTTP or is cut."""
    deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline")
        return remaining

    with socket.create_connection((HOST, port), timeout=left()) as sock:
        sock.settimeout(left())
        sock.sendall(raw)
        buf = b""
        while b"\r\n\r\n" not in buf:
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError("closed before the response head")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        status, length = parse_head(head)
        chunks = [body]
        got = len(body)
        while length is None or got < length:
            sock.settimeout(left())
            chunk = sock.recv(1 << 20)
            if not chunk:
                if length is None:
                    break
                raise ValueError("closed before the end of the body")
            chunks.append(chunk)
            got += len(chunk)
        return status, b"".join(chunks)


def error_name(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, ValueError):
        return "bad response"
    return type(exc).__name__


@dataclass
class Planned:
    """A request a client loop sends: its kind, its bytes and the check of its answer, which
    returns "" when the answer is right and else why it is not."""

    kind: str
    raw: bytes
    check: Callable[[int, bytes], str]


def expect_status(want: int = 200) -> Callable[[int, bytes], str]:
    def check(status: int, body: bytes) -> str:
        return "" if status == want else f"status {status}"

    return check


def expect_list(length: int) -> Callable[[int, bytes], str]:
    """A 200 whose body is a JSON list of ``length`` items (a lookup's answer)."""

    def check(status: int, body: bytes) -> str:
        if status != 200:
            return f"status {status}"
        try:
            got = json.loads(body)
        except ValueError:
            return "bad JSON"
        return "" if isinstance(got, list) and len(got) == length else "wrong results"

    return check


def run_clients(
    port: int,
    plan: Sequence[Planned],
    seconds: float,
    *,
    rate: float,
    timeout: float,
    between: Callable[[], None] | None = None,
) -> list[Sample]:
    """Send ``plan``'s requests in turn (round and round), one at a time, each on a new
    connection with ``timeout``, at ``rate`` requests a second (0: back to back) for
    ``seconds``. ``between`` runs between requests (never inside one's timing), at most once a
    second: the place for sampling the server."""
    samples: list[Sample] = []
    start = time.monotonic()
    next_between = start
    for i, p in enumerate(itertools.cycle(plan)):
        if between is not None and time.monotonic() >= next_between:
            between()
            next_between = time.monotonic() + 1.0
        now = time.monotonic()
        due = start + i / rate if rate > 0 else now
        if due > now:
            time.sleep(due - now)
        t0 = time.monotonic()
        if t0 - start >= seconds:
            break
        try:
            status, body = request(port, p.raw, timeout)
            error = p.check(status, body)
        except (OSError, ValueError) as exc:
            error = error_name(exc)
        samples.append(Sample(round(t0 - start, 4), p.kind, time.monotonic() - t0, error))
    return samples


# ----------------------------------------------------------------------------- client processes


@contextlib.contextmanager
def child(cmd: list[str], *, stdin: int) -> Iterator[subprocess.Popen[str]]:
    """A client process, killed if it is still running when the block ends."""
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def result(out: str, what: str) -> Any:
    """The JSON a client printed on its RESULT line."""
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), "")
    if not line:
        raise RuntimeError(f"the {what} client printed no result: {out[-500:]!r}")
    return json.loads(line[7:])
