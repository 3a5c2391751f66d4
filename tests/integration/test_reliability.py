"""Healthy clients stay served whatever other clients do (issue 12), at small scale.

Every row of the issue's table, against a real server started by the default launcher: sockets
that trickle their headers or body or send nothing, while a healthy client (a new TCP connection
per request, 0.5 s timeout, as drunc's client) must get every request answered; the partition
limit that used to wedge; bodies with broken framing; the dump page at 20,000 entries; a
partition name that could be published but never looked up. Deadlines are set to a second so
that each test sees them expire within a few seconds.
"""

from __future__ import annotations

import html
import http.client
import random
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest

from connection_flask.metrics import METRIC_NAMES, PREFIX
from tests.helpers import conn
from tests.integration.conftest import BIN, Server

pytestmark = pytest.mark.integration

# drunc's client gives each request this long.
CLIENT_TIMEOUT = 0.5
# The short deadlines the tests run with, and how late past one a socket may still be closed.
DEADLINE = 1.0
LATE = 1.0
SHORT_DEADLINES = {
    "CONNECTION_FLASK_HEADER_TIMEOUT": str(DEADLINE),
    "CONNECTION_FLASK_BODY_TIMEOUT": str(DEADLINE),
    "CONNECTION_FLASK_KEEPALIVE": str(int(DEADLINE)),
}
# What a crash looks like in the server's log.
CRASH_MARKERS = ("Traceback", "BlockingSwitchOutError")

Start = Callable[..., Server]


# Worker settings a caller's shell could pass on to the servers.
LAUNCHER_SETTINGS = (
    "CONNECTION_FLASK_WORKER_CLASS",
    "CONNECTION_FLASK_THREADS",
    "CONNECTION_FLASK_WORKER_CONNECTIONS",
    "GUNICORN_CMD_ARGS",
)


@pytest.fixture
def default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's own defaults: no worker setting inherited from the caller's shell."""
    for name in LAUNCHER_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def serve(start_server: Start, **env: str) -> Server:
    return start_server([str(BIN / "connection-flask")], env=env)


def metric(name: str) -> str:
    full = f"{PREFIX}_{name}"
    assert full in METRIC_NAMES, f"the service exports no metric {full}"
    return full


def call(
    server: Server, method: str, path: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """One request on its own new connection."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        response = c.getresponse()
        return response.status, response.read()
    finally:
        c.close()


def publish_body(partition: str, uids: list[str]) -> bytes:
    return orjson.dumps({"partition": partition, "connections": [conn(u) for u in uids]})


def publish(server: Server, partition: str, uids: list[str]) -> int:
    return call(server, "POST", "/publish", publish_body(partition, uids))[0]


def lookup(server: Server, partition: str, uid_regex: str = ".*") -> tuple[int, bytes]:
    query = orjson.dumps({"uid_regex": uid_regex, "data_type": "TPSet"})
    return call(server, "POST", f"/getconnection/{partition}", query)


def gauge(server: Server, name: str) -> float:
    """The sum of a metric's samples on /metrics."""
    status, text = call(server, "GET", "/metrics")
    assert status == 200
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    values = pattern.findall(text.decode())
    assert values, f"{name} missing from /metrics"
    return sum(float(v) for v in values)


def crashes(server: Server, since: int = 0) -> list[str]:
    """The crash markers in the server's log (from character ``since`` on)."""
    time.sleep(0.2)  # the service's log lines are written in batches
    log = server.output()[since:]
    return [marker for marker in CRASH_MARKERS if marker in log]


# --- raw sockets ------------------------------------------------------------------------------


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP answer, None for no answer at all."""
    if not answer:
        return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert match, f"not an HTTP answer: {answer[:80]!r}"
    return int(match.group(1))


def read_answer(s: socket.socket, timeout: float) -> bytes:
    """What the server sends until its status line is complete or it closes the connection.
    Raises TimeoutError if it does neither in time."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def raw_request(
    server: Server, data: bytes, *, shut_write: bool = False, timeout: float = 3.0
) -> tuple[int | None, float]:
    """Send bytes on a new connection; the status answered (None: closed without an answer) and
    the seconds from the last byte sent to the answer or the close."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        sent = time.monotonic()
        try:
            answer = read_answer(s, timeout)
        except TimeoutError:
            pytest.fail(f"no answer and no close within {timeout} s")
        return status_of(answer), time.monotonic() - sent


# --- the crowd: sockets that hold a connection without completing a request -------------------

# A request line and headers long enough never to be completed at a byte every 0.2-1 s.
SLOW_HEADER = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 400
# Complete headers announcing a body that then trickles in, far too slowly to finish.
SLOW_BODY_HEAD = (
    b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4096\r\n\r\n{"
)


@dataclass
class _Held:
    kind: str
    sock: socket.socket
    opened: float
    rest: bytes
    next_send: float


@dataclass
class Closed:
    kind: str
    lifetime: float  # seconds from connect (headers sent, for slow bodies) to the close seen
    status: int | None  # what the server answered before closing, None for a bare close


@dataclass
class Crowd:
    """Holds ``counts[kind]`` connections of each kind open against a server, opening a new one
    whenever the server closes one, until stopped: "idle" sends nothing, "header" trickles a
    request line and headers, "body" sends complete headers then trickles the body, each a byte
    every 0.2-1 s. Runs in its own thread; records every close the server made."""

    port: int
    counts: dict[str, int]
    closed: list[Closed] = field(default_factory=list)
    open_at_stop: list[tuple[str, float]] = field(default_factory=list)  # (kind, age)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Crowd:
        self._thread = threading.Thread(target=self._run, name="crowd", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def held(self) -> int:
        return sum(self.counts.values())

    def _open(self, kind: str, rng: random.Random) -> _Held | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
        except OSError as exc:
            self.errors.append(f"connect ({kind}): {exc!r}")
            return None
        s.setblocking(False)
        first = {"idle": b"", "header": SLOW_HEADER[:1], "body": SLOW_BODY_HEAD}[kind]
        rest = {"idle": b"", "header": SLOW_HEADER[1:], "body": b" " * 4000}[kind]
        if first:
            s.send(first)  # a few bytes into an empty socket buffer: sent whole
        now = time.monotonic()
        return _Held(kind, s, now, rest, now + rng.uniform(0.2, 1.0))

    def _run(self) -> None:
        rng = random.Random(12)
        sel = selectors.DefaultSelector()
        held: dict[socket.socket, _Held] = {}

        def close(h: _Held, answer: bytes) -> None:
            sel.unregister(h.sock)
            h.sock.close()
            del held[h.sock]
            try:
                status = status_of(answer)
            except AssertionError as exc:
                self.errors.append(str(exc))
                status = None
            self.closed.append(Closed(h.kind, time.monotonic() - h.opened, status))

        while not self._stop.is_set():
            for kind, count in self.counts.items():
                for _ in range(count - sum(1 for h in held.values() if h.kind == kind)):
                    h = self._open(kind, rng)
                    if h is not None:
                        held[h.sock] = h
                        sel.register(h.sock, selectors.EVENT_READ, h)
            now = time.monotonic()
            for h in list(held.values()):
                if h.rest and h.next_send <= now:
                    try:
                        h.sock.send(h.rest[:1])
                    except OSError:
                        close(h, b"")
                        continue
                    h.rest = h.rest[1:]
                    h.next_send = now + rng.uniform(0.2, 1.0)
            for key, _ in sel.select(timeout=0.02):
                h = key.data
                try:
                    answer = h.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    answer = b""
                close(h, answer)
        now = time.monotonic()
        self.open_at_stop = [(h.kind, now - h.opened) for h in held.values()]
        for h in held.values():
            h.sock.close()
        sel.close()


def healthy_client(server: Server, seconds: float) -> tuple[int, list[str]]:
    """Alternately publish 20 connections and look them up, each on a new connection with
    drunc's timeout, for ``seconds``. Returns how many requests were made and the failures."""
    uids = [f"healthy-{i:02d}" for i in range(20)]
    requests = [
        ("/publish", publish_body("healthy", uids)),
        ("/getconnection/healthy", orjson.dumps({"uid_regex": "healthy-.*", "data_type": "TPSet"})),
    ]
    failures: list[str] = []
    made = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and made < 200:
        path, body = requests[made % 2]
        made += 1
        start = time.monotonic()
        try:
            status, answer = call(server, "POST", path, body, timeout=CLIENT_TIMEOUT)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{path}: {exc!r} after {time.monotonic() - start:.3f} s")
            continue
        took = time.monotonic() - start
        if status != 200 or took > CLIENT_TIMEOUT:
            failures.append(f"{path}: {status} after {took:.3f} s")
        elif path != "/publish" and len(orjson.loads(answer)) != len(uids):
            failures.append(f"{path}: {len(orjson.loads(answer))} of {len(uids)} connections")
        time.sleep(0.03)
    return made, failures


# --- starvation -------------------------------------------------------------------------------

# Rows of the table, scaled down: kind -> sockets held at once.
CROWDS = {
    "two_clients_trickling_headers": {"header": 2},
    "fifty_idle_sockets": {"idle": 50},
    "idle_slow_header_and_slow_body_sockets": {"idle": 200, "header": 20, "body": 20},
}
HOLD = 2.0  # seconds the healthy client runs while the crowd is held: past DEADLINE + LATE


def assert_cut_at_their_deadline(held: Crowd) -> None:
    """Every socket of the first wave was closed by the server, none before half its deadline
    nor long after it, with a 408 or no answer at all."""
    for kind, count in held.counts.items():
        closes = [c for c in held.closed if c.kind == kind]
        assert len(closes) >= count, f"{kind}: {len(closes)} of {count} sockets closed"
        early = [round(c.lifetime, 2) for c in closes if c.lifetime < DEADLINE / 2]
        late = [round(c.lifetime, 2) for c in closes if c.lifetime > DEADLINE + LATE]
        assert not early, f"{kind}: closed before half the deadline: {early[:5]}"
        assert not late, f"{kind}: closed long after the deadline: {late[:5]}"
        answers = {c.status for c in closes} - {None}
        assert answers <= {408}, f"{kind}: answered {answers} instead of 408 or a close"
    overdue = [(k, round(age, 2)) for k, age in held.open_at_stop if age > DEADLINE + LATE]
    assert not overdue, f"still open past the deadline: {overdue[:5]}"


@pytest.mark.usefixtures("default_env")
@pytest.mark.parametrize("crowd", list(CROWDS.values()), ids=list(CROWDS))
def test_held_sockets_are_cut_at_their_deadline_while_a_healthy_client_gets_every_answer(
    start_server: Start, crowd: dict[str, int]
) -> None:
    server = serve(start_server, **SHORT_DEADLINES)
    with Crowd(server.port, crowd) as held:
        time.sleep(0.3)  # every socket connected and sending before the first healthy request
        made, failures = healthy_client(server, HOLD)
    assert not held.errors, held.errors[:5]
    assert not failures, f"{len(failures)} of {made} requests failed: {failures[:5]}"
    assert made >= 20, f"only {made} requests in {HOLD} s"
    assert_cut_at_their_deadline(held)
    assert not crashes(server), server.output()


# --- each deadline, one at a time (the other two far away) ------------------------------------


def only_deadline(setting: str) -> dict[str, str]:
    far = {
        "CONNECTION_FLASK_HEADER_TIMEOUT": "30",
        "CONNECTION_FLASK_BODY_TIMEOUT": "30",
        "CONNECTION_FLASK_KEEPALIVE": "30",
    }
    return {**far, setting: SHORT_DEADLINES[setting]}


def closed_after(s: socket.socket, since: float) -> tuple[int | None, float]:
    try:
        answer = read_answer(s, DEADLINE + LATE + 2)
    except TimeoutError:
        pytest.fail(f"still open {time.monotonic() - since:.1f} s later")
    return status_of(answer), time.monotonic() - since


def trickle_until_closed(s: socket.socket, data: bytes, since: float) -> tuple[int | None, float]:
    """Send ``data`` a byte every 0.25 s until the server answers or closes (or well past the
    deadline)."""
    s.settimeout(0.25)
    for byte in data:
        if time.monotonic() - since > DEADLINE + LATE + 1:
            break
        try:
            answer = s.recv(4096)
        except TimeoutError:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                return None, time.monotonic() - since
            continue
        except ConnectionResetError:
            answer = b""
        return status_of(answer), time.monotonic() - since
    pytest.fail(f"still open {time.monotonic() - since:.1f} s later")


def assert_on_deadline(status: int | None, took: float) -> None:
    assert status in (None, 408), f"answered {status} instead of 408 or a close"
    assert DEADLINE / 2 <= took <= DEADLINE + LATE, f"closed after {took:.2f} s"


@pytest.mark.usefixtures("default_env")
def test_headers_not_complete_within_the_header_timeout_are_cut(start_server: Start) -> None:
    server = serve(start_server, **only_deadline("CONNECTION_FLASK_HEADER_TIMEOUT"))
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        since = time.monotonic()
        assert_on_deadline(*trickle_until_closed(s, SLOW_HEADER, since))


@pytest.mark.usefixtures("default_env")
def test_a_body_not_complete_within_the_body_timeout_is_answered_408(start_server: Start) -> None:
    server = serve(start_server, **only_deadline("CONNECTION_FLASK_BODY_TIMEOUT"))
    body = publish_body("trickled", ["t"])
    head = (
        b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(head)
        since = time.monotonic()
        assert_on_deadline(*trickle_until_closed(s, body, since))
    assert lookup(server, "trickled")[0] == 404, "a body cut at its deadline was stored"


@pytest.mark.usefixtures("default_env")
def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive(start_server: Start) -> None:
    server = serve(start_server, **only_deadline("CONNECTION_FLASK_KEEPALIVE"))
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        c.request("GET", "/healthz")
        response = c.getresponse()
        assert response.status == 200
        response.read()
        assert c.sock is not None, "the connection was not kept alive at all"
        assert_on_deadline(*closed_after(c.sock, time.monotonic()))
    finally:
        c.close()


# --- the default worker and shutdown under load -----------------------------------------------


@pytest.mark.usefixtures("default_env")
def test_the_default_launcher_runs_the_gevent_worker(start_server: Start) -> None:
    server = serve(start_server)
    used = re.search(r"Using worker: (\S+)", server.output())
    assert used, server.output()
    assert "gevent" in used.group(1).lower(), used.group(0)


# --- the wedge: a full registry recovers by itself --------------------------------------------

WEDGE = {
    "CONNECTION_FLASK_MAX_PARTITIONS": "5",
    "ENTRY_TTL": "0.5",
    "CONNECTION_FLASK_SWEEP_INTERVAL": "0.2",
}


def fill_partitions(server: Server) -> float:
    """Publish the five partitions the limit allows; check a sixth is refused while they live.
    Returns when the last was published."""
    for n in range(5):
        assert publish(server, f"full-{n}", [f"u{n}"]) == 200
    published = time.monotonic()
    assert publish(server, "sixth", ["u6"]) == 429, "the partition limit is not reached"
    return published


def publish_until_accepted(server: Server, within: float) -> list[int]:
    """Publish to the sixth partition every 0.1 s until it is accepted; the statuses seen."""
    seen = [publish(server, "sixth", ["u6"])]
    end = time.monotonic() + within
    while seen[-1] != 200 and time.monotonic() < end:
        time.sleep(0.1)
        seen.append(publish(server, "sixth", ["u6"]))
    return seen


def test_partitions_left_to_expire_stop_counting_against_the_limit(start_server: Start) -> None:
    server = serve(start_server, **WEDGE, CONNECTION_FLASK_PURGE_GRACE="0")
    published = fill_partitions(server)
    # Expired past the grace (0) and reclaimed within a couple of sweeps.
    time.sleep(max(0.0, published + 0.5 - time.monotonic()))
    seen = publish_until_accepted(server, within=3 * 0.2 + 0.5)
    assert seen[-1] == 200, f"a new partition is still refused: {seen}"
    assert set(seen) <= {200, 429}, seen
    status, found = lookup(server, "sixth")
    assert status == 200
    assert [e["uid"] for e in orjson.loads(found)] == ["u6"]


def test_partitions_purged_stop_counting_against_the_limit(start_server: Start) -> None:
    # A long grace: only /purge removes the expired entries.
    server = serve(start_server, **WEDGE, CONNECTION_FLASK_PURGE_GRACE="60")
    published = fill_partitions(server)
    time.sleep(max(0.0, published + 0.6 - time.monotonic()))
    status, page = call(server, "GET", "/purge")
    assert status == 200
    assert b"Purged 5 expired entries" in page
    seen = publish_until_accepted(server, within=2 * 0.2)
    assert seen[-1] == 200, f"a new partition is still refused after /purge: {seen}"
    assert set(seen) <= {200, 429}, seen


def test_expired_entries_are_reclaimed_without_any_publish(start_server: Start) -> None:
    ttl, grace, sweep = 0.5, 0.0, 0.2
    server = serve(
        start_server,
        ENTRY_TTL=str(ttl),
        CONNECTION_FLASK_PURGE_GRACE=str(grace),
        CONNECTION_FLASK_SWEEP_INTERVAL=str(sweep),
    )
    stored, expired = metric("stored_entries"), metric("entries_expired_total")
    for partition in ("left-a", "left-b"):
        assert publish(server, partition, [f"{partition}-{i}" for i in range(50)]) == 200
    assert gauge(server, stored) == 100
    time.sleep(ttl + grace + 4 * sweep)  # no request at all meanwhile
    assert gauge(server, stored) == 0
    assert gauge(server, expired) == 100


# --- bad framing is a 4xx ---------------------------------------------------------------------


def head(framing: bytes) -> bytes:
    return (
        b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + framing
        + b"\r\n"
    )


@dataclass(frozen=True)
class Framing:
    """A publish to partition ``name`` sent with broken framing, and what the server must do."""

    name: str
    request: Callable[[bytes], bytes]  # the publish body -> the bytes sent
    shut_write: bool
    statuses: tuple[int | None, ...]
    within: tuple[float, float] = (0.0, 1.0)  # seconds from the last byte sent to the answer


CHUNKED = b"Transfer-Encoding: chunked\r\n"
FRAMINGS = [
    # The whole publish in a first chunk, then a size that is not hex.
    Framing(
        "malformed_chunk_size",
        lambda body: head(CHUNKED) + b"%x\r\n%s\r\nZZ\r\n" % (len(body), body),
        shut_write=False,
        statuses=(400,),
    ),
    # The whole publish in a chunk, then the client stops without the last chunk.
    Framing(
        "truncated_chunked_body",
        lambda body: head(CHUNKED) + b"%x\r\n%s\r\n" % (len(body), body),
        shut_write=True,
        statuses=(400,),
    ),
    # A chunk of 2^68 bytes: refused from its size line, not awaited.
    Framing(
        "chunk_size_past_the_body_limit",
        lambda body: head(CHUNKED) + b"fffffffffffffffff\r\n" + body,
        shut_write=False,
        statuses=(413,),
        within=(0.0, 0.5),
    ),
    # The whole publish, but ten bytes fewer than announced, then the client stops.
    Framing(
        "body_shorter_than_its_content_length",
        lambda body: head(b"Content-Length: %d\r\n" % (len(body) + 10)) + body,
        shut_write=True,
        statuses=(400,),
    ),
    # Half the body, then nothing: the body deadline answers.
    Framing(
        "body_stalling_halfway",
        lambda body: head(b"Content-Length: %d\r\n" % len(body)) + body[: len(body) // 2],
        shut_write=False,
        statuses=(408, None),
        within=(DEADLINE / 2, DEADLINE + LATE),
    ),
    Framing(
        "content_length_not_a_number",
        lambda body: head(b"Content-Length: abc\r\n") + body,
        shut_write=False,
        statuses=(400,),
    ),
    Framing(
        "two_different_content_lengths",
        lambda body: head(b"Content-Length: %d\r\nContent-Length: 7\r\n" % len(body)) + body,
        shut_write=False,
        statuses=(400,),
    ),
]


@pytest.fixture(scope="module")
def framing_server(start_module_server: Start) -> Server:
    """One server for every framing case: each publishes to its own partition."""
    with pytest.MonkeyPatch.context() as mp:
        for name in LAUNCHER_SETTINGS:
            mp.delenv(name, raising=False)
        return serve(start_module_server, CONNECTION_FLASK_BODY_TIMEOUT=str(DEADLINE))


@pytest.mark.parametrize("framing", FRAMINGS, ids=[f.name for f in FRAMINGS])
def test_bad_framing_is_a_4xx_and_stores_nothing(framing_server: Server, framing: Framing) -> None:
    server = framing_server
    logged = len(server.output())
    request = framing.request(publish_body(framing.name, ["f"]))
    status, took = raw_request(server, request, shut_write=framing.shut_write)
    assert status in framing.statuses, f"answered {status}, expected one of {framing.statuses}"
    low, high = framing.within
    assert low <= took <= high, f"answered after {took:.2f} s, expected {low}-{high} s"
    assert lookup(server, framing.name)[0] == 404, "the badly framed publish was stored"
    assert not crashes(server, since=logged), server.output()[logged:]


# --- bounded admin page -----------------------------------------------------------------------

PAGE = 50  # CONNECTION_FLASK_DUMP_PAGE_SIZE for the test
MB = 1_000_000


def entry_rows(page: str, uid_prefix: str) -> int:
    """Table rows on the page whose cells show one of the partition's uids."""
    rows = re.findall(r"<tr\b.*?</tr>", page, re.DOTALL)
    cell = re.compile(rf"<td\b[^>]*>\s*(?:<strike>)?{re.escape(uid_prefix)}\d+")
    return sum(1 for row in rows if cell.search(row))


def test_dump_page_stays_small_at_any_registry_size(start_server: Start) -> None:
    server = serve(
        start_server,
        ENTRY_TTL="600",
        CONNECTION_FLASK_DUMP_PAGE_SIZE=str(PAGE),
        CONNECTION_FLASK_DEBUG="0",
    )
    for batch in range(2):
        uids = [f"bulk-{batch * 10_000 + i:05d}" for i in range(10_000)]
        assert publish(server, "bulky", uids) == 200
    status, page = call(server, "GET", "/")
    assert status == 200
    assert len(page) <= MB, f"GET / answered {len(page)} bytes"
    text = page.decode()
    assert "bulky" in text
    assert 1 <= entry_rows(text, "bulk-") <= PAGE


def test_dump_page_shows_a_page_of_entries_and_links_to_the_rest(start_server: Start) -> None:
    server = serve(start_server, ENTRY_TTL="600", CONNECTION_FLASK_DUMP_PAGE_SIZE=str(PAGE))
    uids = {f"more-{i:03d}" for i in range(2 * PAGE + 20)}
    assert publish(server, "paged", sorted(uids)) == 200
    # Follow the page's own links (at most 20 pages) and collect the entries they show.
    seen: set[str] = set()
    visited: set[str] = set()
    pending = ["/"]
    while pending and len(visited) < 20:
        path = pending.pop(0)
        visited.add(path)
        status, page = call(server, "GET", path)
        assert status == 200, path
        text = page.decode()
        shown = re.findall(r"<td\b[^>]*>\s*(?:<strike>)?(more-\d+)", text)
        assert len(shown) <= PAGE, f"{path} shows {len(shown)} entries"
        seen.update(shown)
        links = {html.unescape(h) for h in re.findall(r'href="(/[^"]*)"', text)}
        pending += sorted(links - visited - set(pending))
    assert seen == uids, f"{len(uids - seen)} entries reachable from no page"


# --- a partition that can be published can be looked up ---------------------------------------


def test_a_partition_name_with_a_slash_is_refused_at_publish(start_server: Start) -> None:
    server = serve(start_server)
    status, answer = call(server, "POST", "/publish", publish_body("a/b", ["x"]))
    assert status == 400
    error = orjson.loads(answer)["error"]
    assert "/" in error.replace("a/b", ""), f"the error does not say why: {error!r}"
    assert gauge(server, metric("stored_entries")) == 0
    assert gauge(server, metric("partitions")) == 0
