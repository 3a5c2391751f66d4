"""Client processes of ``make bench``'s reliability and admin scenarios (all traffic to 127.0.0.1).

- ``Pressure``: ONE process, one selector, thousands of non-blocking sockets toward the server:
  *idle* (connect, send nothing), *slow-header* (a request line and headers, one byte per
  interval, never finished) and *slow-body* (complete ``POST /publish`` headers with a
  Content-Length, then body bytes one per interval). A socket the server closes is reopened at
  once, so the pressure stays; each close is recorded with the seconds the socket had been
  connected and the status code of the first reply the server sent on it, if any.
- ``dump_loop``: ``GET /`` again and again, each on a new connection.

Started by bench/reliability.py and bench/admin_load.py (through ``clients.child``):

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
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from clients import HOST, error_name, raise_nofile, raw_request, request, status_of

KINDS = ("idle", "slow-header", "slow-body")
# Long enough that a trickle of one byte a second never finishes it within any hold.
PAD = 4000


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
