"""Socket-level clients for the reliability and admin scenarios of ``make bench``.

- ``Pressure``: ONE process, one selector, thousands of non-blocking sockets toward the server:
  *idle* (connect, send nothing), *slow-header* (a request line and headers, one byte per
  interval, never finished) and *slow-body* (complete ``POST /publish`` headers with a
  Content-Length, then body bytes one per interval). A socket the server closes is reopened at
  once, so the pressure stays; each close is recorded with the seconds the socket had been
  connected and the status code of the first reply the server sent on it, if any.
- ``request``: one HTTP/1.1 request on a NEW TCP connection with one overall deadline, the way
  the C++ DAQ client (a connection per request) and drunc's client (0.5 s timeout) talk.
- ``run_clients``: ``request`` in a loop at a fixed rate, every latency and outcome recorded.
- ``percentile`` / ``latency_summary`` / ``timeline``: pure arithmetic on those records.

Run as a script it is one of the client processes of bench/run.py (all traffic to 127.0.0.1):

    python bench/stress_clients.py pressure --port P --idle 2000 --slow-header 200 \\
        --slow-body 200 --seconds 80
        prints "READY {json}" once the sockets are up, holds them until its standard input
        closes (or --seconds pass), then prints "RESULT {json}" and exits.
    python bench/stress_clients.py dump --port P --seconds 20 --timeout 120
        GET / again and again (a new connection each) for --seconds; prints "RESULT {json}".
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import heapq
import itertools
import json
import math
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
KINDS = ("idle", "slow-header", "slow-body")
# Long enough that a trickle of one byte a second never finishes it within any hold.
PAD = 4000


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


# ----------------------------------------------------------------------------- pressure


def slow_header_bytes(port: int) -> bytes:
    """A request line and headers whose end never comes: the last header is padded."""
    return f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Slow: {'a' * PAD}".encode()


def slow_body_head(port: int) -> bytes:
    return (
        f"POST /publish HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {PAD + 100}\r\n\r\n"
    ).encode()


def slow_body_bytes() -> bytes:
    return b'{"partition":"slow","connections":[' + b" " * PAD


@dataclass
class KindStats:
    """What happened to the sockets of one kind while they were held."""

    wanted: int
    opened: int = 0  # connect() calls, the reopened ones included
    connect_failures: int = 0
    established_at_ready: int = 0
    min_established: int = -1  # while held, after READY (-1: never sampled)
    closed_by_server: int = 0
    close_seconds: list[float] = field(default_factory=list)  # connected -> closed
    closed_at: list[float] = field(default_factory=list)  # seconds after READY
    replies: dict[str, int] = field(default_factory=dict)  # first status sent before a close
    pending_at_end: int = 0
    established_at_end: int = 0


@dataclass(eq=False)
class Held:
    kind: str
    sock: socket.socket
    connected: float = 0.0
    sent: int = 0
    reply: bytes = b""
    gone: bool = False


class Pressure:
    """Hold ``counts[kind]`` sockets of each kind open toward 127.0.0.1:port, trickling one
    byte per ``interval`` on the slow ones, reopening any the server closes."""

    def __init__(self, port: int, counts: dict[str, int], interval: float = 1.0) -> None:
        self.port, self.interval = port, interval
        self.sel = selectors.DefaultSelector()
        self.stats = {k: KindStats(counts.get(k, 0)) for k in KINDS}
        self.established = dict.fromkeys(KINDS, 0)
        self.pending: set[Held] = set()
        self.due: list[tuple[float, int, Held]] = []  # (next send, tie-break, socket)
        self.retry: list[tuple[float, str]] = []  # (when, kind): reopen after a failed connect
        self.seq = itertools.count()
        self.ready_at: float | None = None
        self.trickle = {
            "slow-header": slow_header_bytes(port),
            "slow-body": slow_body_bytes(),
        }
        self.head = {"slow-body": slow_body_head(port)}

    def open(self, kind: str) -> None:
        st = self.stats[kind]
        st.opened += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex((HOST, self.port))
        if err not in (0, errno.EINPROGRESS):
            st.connect_failures += 1
            sock.close()
            self.retry.append((time.monotonic() + 0.5, kind))
            return
        held = Held(kind, sock)
        self.pending.add(held)
        self.sel.register(sock, selectors.EVENT_WRITE, held)

    def on_connect(self, h: Held, now: float) -> None:
        self.pending.discard(h)
        err = h.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.stats[h.kind].connect_failures += 1
            self.drop(h)
            self.retry.append((now + 0.5, h.kind))
            return
        h.connected = now
        self.established[h.kind] += 1
        self.sel.modify(h.sock, selectors.EVENT_READ, h)
        head = self.head.get(h.kind)
        if head:
            try:
                h.sock.send(head)  # a few hundred bytes: an empty socket buffer takes them
            except OSError:
                self.on_close(h, now)
                return
        if h.kind in self.trickle:
            first = now + self.interval * (next(self.seq) % 97) / 97  # spread over an interval
            heapq.heappush(self.due, (first, next(self.seq), h))

    def on_readable(self, h: Held, now: float) -> None:
        try:
            data = h.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if len(h.reply) < 64:
                h.reply += data[: 64 - len(h.reply)]
            return
        self.on_close(h, now)

    def on_close(self, h: Held, now: float) -> None:
        st = self.stats[h.kind]
        st.closed_by_server += 1
        st.close_seconds.append(round(now - h.connected, 3))
        if self.ready_at is not None:
            st.closed_at.append(round(now - self.ready_at, 3))
        status = status_of(h.reply)
        st.replies[status] = st.replies.get(status, 0) + 1
        self.established[h.kind] -= 1
        self.note_low()
        self.drop(h)
        self.open(h.kind)

    def drop(self, h: Held) -> None:
        h.gone = True
        self.pending.discard(h)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(h.sock)
        h.sock.close()

    def send_due(self, now: float) -> None:
        while self.due and self.due[0][0] <= now:
            _, _, h = heapq.heappop(self.due)
            if h.gone:
                continue
            data = self.trickle[h.kind]
            if h.sent < len(data):
                try:
                    h.sent += h.sock.send(data[h.sent : h.sent + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    self.on_close(h, now)
                    continue
            heapq.heappush(self.due, (max(now, h.connected) + self.interval, next(self.seq), h))

    def note_low(self) -> None:
        if self.ready_at is None:
            return
        for kind, st in self.stats.items():
            n = self.established[kind]
            st.min_established = n if st.min_established < 0 else min(st.min_established, n)

    def ready(self, now: float) -> dict[str, Any]:
        self.ready_at = now
        for kind, st in self.stats.items():
            st.established_at_ready = self.established[kind]
        self.note_low()
        return {
            "established": dict(self.established),
            "pending": len(self.pending),
            "connect_failures": {k: s.connect_failures for k, s in self.stats.items()},
        }

    def run(
        self, seconds: float, ramp: float = 10.0, on_ready: Callable[[dict[str, Any]], None] = print
    ) -> dict[str, Any]:
        """Open everything, call ``on_ready`` once every socket is connected (or ``ramp``
        seconds have passed), hold until ``seconds`` have passed since the start or standard
        input is closed; return the statistics."""
        start = time.monotonic()
        for kind in KINDS:
            for _ in range(self.stats[kind].wanted):
                self.open(kind)
        stop = False
        # No usable standard input: --seconds alone bounds the hold.
        with contextlib.suppress(OSError, ValueError):
            self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        total = sum(s.wanted for s in self.stats.values())
        while not stop:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if self.ready_at is None and (
                sum(self.established.values()) >= total or now - start >= ramp
            ):
                on_ready(self.ready(now))
            while self.retry and self.retry[0][0] <= now:
                _, kind = self.retry.pop(0)
                self.open(kind)
            self.send_due(now)
            wait = 0.05
            if self.due:
                wait = min(wait, max(self.due[0][0] - now, 0.0))
            for key, events in self.sel.select(wait):
                now = time.monotonic()
                h = key.data
                if h is None:  # the parent closed our standard input: the hold is over
                    stop = not os.read(sys.stdin.fileno(), 4096)
                    continue
                if h.gone:
                    continue
                if h in self.pending:
                    self.on_connect(h, now)
                elif events & selectors.EVENT_READ:
                    self.on_readable(h, now)
        for st in self.stats.values():
            st.pending_at_end = 0
        for h in list(self.pending):
            self.stats[h.kind].pending_at_end += 1
        for kind, st in self.stats.items():
            st.established_at_end = self.established[kind]
        for key in list(self.sel.get_map().values()):
            if isinstance(key.data, Held):
                self.drop(key.data)
        self.sel.close()
        return {
            "held_seconds": round(time.monotonic() - (self.ready_at or start), 2),
            "kinds": {k: asdict(s) for k, s in self.stats.items()},
        }


# ----------------------------------------------------------------------------- dump client


def dump_loop(port: int, seconds: float, timeout: float) -> dict[str, Any]:
    """GET / on a new connection, again and again for ``seconds`` (the last one may end
    later, bounded by ``timeout``): each one's status, size and time."""
    raw = raw_request("GET", "/", port)
    out: list[dict[str, Any]] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        t0 = time.monotonic()
        try:
            status, body = request(port, raw, timeout)
            out.append({"status": status, "bytes": len(body), "seconds": time.monotonic() - t0})
        except (OSError, ValueError) as exc:
            out.append({"error": error_name(exc), "seconds": time.monotonic() - t0})
            time.sleep(0.1)
    return {"gets": out}


# ----------------------------------------------------------------------------- script


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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="role", required=True)
    p = sub.add_parser("pressure", help="hold idle / slow-header / slow-body sockets")
    p.add_argument("--port", type=int, required=True)
    for kind in KINDS:
        p.add_argument(f"--{kind}", type=int, default=0, dest=kind.replace("-", "_"))
    p.add_argument("--interval", type=float, default=1.0, help="seconds between trickled bytes")
    p.add_argument("--seconds", type=float, required=True, help="hard bound on the whole hold")
    p.add_argument("--ramp", type=float, default=10.0, help="most seconds to wait for READY")
    d = sub.add_parser("dump", help="GET / in a loop")
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--seconds", type=float, required=True)
    d.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)

    def emit(tag: str, payload: dict[str, Any]) -> None:
        print(f"{tag} {json.dumps(payload, separators=(',', ':'))}", flush=True)

    if args.role == "pressure":
        raise_nofile()
        counts = {k: getattr(args, k.replace("-", "_")) for k in KINDS}
        pressure = Pressure(args.port, counts, args.interval)
        result = pressure.run(args.seconds, args.ramp, lambda info: emit("READY", info))
        emit("RESULT", result)
    else:
        emit("RESULT", dump_loop(args.port, args.seconds, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
