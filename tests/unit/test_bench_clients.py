"""The arithmetic and verdicts of `make bench`'s reliability, admin and worker-class groups
(bench/clients.py, bench/stress_clients.py, bench/reliability.py, bench/admin_load.py,
bench/lanes.py). The load itself is never a unit test; only the one-request client is tried, on
loopback, in well under a second."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

import admin_load  # noqa: E402
import clients as sc  # noqa: E402
import lanes  # noqa: E402
import reliability  # noqa: E402
import stress_clients  # noqa: E402

# ----------------------------------------------------------------------------- percentiles


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # order does not matter
    assert sc.percentile(values, 50) == 50.0
    assert sc.percentile(values, 99) == 99.0
    assert sc.percentile(values, 100) == 100.0
    assert sc.percentile([7.0], 99) == 7.0
    # 200 values: p99 is the 198th, so two slow requests do not move it, three do.
    assert sc.percentile([1.0] * 198 + [500.0] * 2, 99) == 1.0
    assert sc.percentile([1.0] * 197 + [500.0] * 3, 99) == 500.0


def test_percentile_of_nothing_is_zero_and_a_bad_rank_is_refused() -> None:
    assert sc.percentile([], 99) == 0.0
    for q in (0, 101, -1):
        with pytest.raises(ValueError, match="percentile"):
            sc.percentile([1.0], q)


def test_failed_requests_count_in_the_latencies_at_the_time_they_took_to_fail() -> None:
    samples = [sc.Sample(i / 100, "lookup", 0.001) for i in range(98)]
    samples += [sc.Sample(0.98, "publish", 0.5, "timeout"), sc.Sample(0.99, "lookup", 0.2, "reset")]
    s = sc.latency_summary(samples)
    assert (s["requests"], s["failures"]) == (100, 2)
    assert s["errors"] == {"timeout": 1, "reset": 1}
    assert s["p50_ms"] == 1.0
    assert s["p99_ms"] == 200.0
    assert s["max_ms"] == 500.0


def test_the_timeline_counts_requests_and_failures_per_second() -> None:
    samples = [
        sc.Sample(0.1, "publish", 0.002),
        sc.Sample(0.9, "lookup", 0.5, "timeout"),
        sc.Sample(2.5, "lookup", 0.001),
    ]
    assert sc.timeline(samples) == [[0.0, 2, 1, 500.0], [2.0, 1, 0, 1.0]]


# ----------------------------------------------------------------------------- HTTP parsing


def test_the_status_of_a_first_reply() -> None:
    assert sc.status_of(b"HTTP/1.1 408 Request Timeout\r\n") == "408"
    assert sc.status_of(b"HTTP/1.0 200") == "200"
    assert sc.status_of(b"") == "none"
    assert sc.status_of(b"\x16\x03garbage") == "?"


def test_a_response_head_gives_its_status_and_length() -> None:
    head = b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 12\r\nConnection: close"
    assert sc.parse_head(head) == (200, 12)
    assert sc.parse_head(b"HTTP/1.1 204 No Content") == (204, None)
    with pytest.raises(ValueError, match="status line"):
        sc.parse_head(b"SSH-2.0-OpenSSH")


def test_a_request_names_its_length_and_asks_for_the_connection_to_close() -> None:
    raw = sc.raw_request("POST", "/publish", 8000, b'{"a":1}')
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b'{"a":1}'
    assert head.startswith(b"POST /publish HTTP/1.1\r\n")
    assert b"Content-Length: 7" in head and b"Connection: close" in head
    assert b"Content-Length" not in sc.raw_request("GET", "/", 8000)


def test_answer_checks() -> None:
    assert sc.expect_status(200)(200, b"") == ""
    assert sc.expect_status(200)(503, b"") == "status 503"
    check = sc.expect_list(5)
    assert check(200, b"[1,2,3,4,5]") == ""
    assert check(200, b"[1]") == "wrong results"
    assert check(200, b"<html>") == "bad JSON"
    assert check(429, b"[]") == "status 429"


def test_the_slow_sockets_never_finish_within_any_hold() -> None:
    assert b"\r\n\r\n" not in stress_clients.slow_header_bytes(8000)
    head = stress_clients.slow_body_head(8000)
    assert head.endswith(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length > len(stress_clients.slow_body_bytes()) > 3600  # an hour at a byte a second


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def _serve_once(listener: socket.socket, reply: bytes | None) -> threading.Thread:
    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)
            else:
                conn.recv(65536)  # say nothing until the client gives up

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_one_request_reads_the_whole_body(listener: socket.socket) -> None:
    t = _serve_once(listener, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    port = listener.getsockname()[1]
    assert sc.request(port, sc.raw_request("GET", "/", port), 2.0) == (200, b"hello")
    t.join(2)


def test_one_request_gives_up_at_its_deadline(listener: socket.socket) -> None:
    t = _serve_once(listener, None)
    port = listener.getsockname()[1]
    with pytest.raises(TimeoutError) as exc:
        sc.request(port, sc.raw_request("GET", "/", port), 0.1)
    assert sc.error_name(exc.value) == "timeout"
    t.join(2)


def test_a_body_cut_short_is_a_bad_response(listener: socket.socket) -> None:
    t = _serve_once(listener, b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello")
    port = listener.getsockname()[1]
    with pytest.raises(ValueError, match="end of the body") as exc:
        sc.request(port, sc.raw_request("GET", "/", port), 2.0)
    assert sc.error_name(exc.value) == "bad response"
    t.join(2)


# ----------------------------------------------------------------------------- reliability


def _outcome(failures: int = 0, p99: float = 2.0, *, reference: bool = False) -> object:
    return reliability.Outcome(
        config=lanes.REFERENCE if reference else "gevent (default)",
        env={},
        hold_seconds=20,
        rate=100,
        timeout=0.5,
        requests=2000,
        failures=failures,
        errors={"timeout": failures} if failures else {},
        p50_ms=1.0,
        p99_ms=p99,
        max_ms=max(p99, 3.0),
        held=[
            reliability.held_from(
                "idle",
                {
                    "wanted": 2000,
                    "established_at_ready": 2000,
                    "min_established": 1990,
                    "opened": 4000,
                    "connect_failures": 0,
                    "closed_by_server": 3,
                    "close_seconds": [10.2, 9.9, 10.0],
                    "closed_at": [9.5, 9.9, 19.9],
                    "replies": {"none": 3},
                },
            )
        ],
        reference=reference,
    )


@pytest.mark.parametrize(
    ("failures", "p99", "ok"),
    [(0, 2.0, True), (0, 99.9, True), (0, 100.0, False), (1, 2.0, False)],
)
def test_reliability_passes_with_no_failure_and_p99_under_100_ms(
    failures: int, p99: float, ok: bool
) -> None:
    assert reliability.passed(_outcome(failures, p99)) is ok


def test_a_run_with_no_request_does_not_pass() -> None:
    o = _outcome()
    o.requests = 0
    assert not reliability.passed(o)


def test_the_reference_run_is_reported_but_is_not_a_target() -> None:
    rows = reliability.verdicts([_outcome(), _outcome(40, 500.0, reference=True)])
    assert len(rows) == 1
    name, wanted, got, ok = rows[0]
    assert "gevent (default)" in name and "2,000 idle" in name and "held 20 s" in name
    assert (wanted, got, ok) == ("0 failures, p99 < 100 ms", "0 of 2000 failed, p99 2.0 ms", True)
    table = "\n".join(reliability.render([_outcome(), _outcome(40, 500.0, reference=True)]))
    assert "**no** (reference)" in table
    o = _outcome()
    o.timeline = [[0.0, 100, 0, 3.0], [9.0, 100, 0, 166.4], [10.0, 100, 0, 2.0]]
    assert reliability.slowest_second(o) == "9-10 s: 166 ms"
    assert "| 40 (timeout 40) |" in table


def test_the_closes_of_a_kind_are_summarised() -> None:
    held = _outcome().held[0]
    assert (held.close_median_s, held.close_min_s, held.close_max_s) == (10.0, 9.9, 10.2)
    assert held.first_close_after_ready_s == 9.5
    assert reliability.close_cell(held) == "10 (9.9 to 10.2)"


def test_a_reliability_outcome_survives_the_results_file() -> None:
    o = _outcome()
    assert reliability.from_json(asdict(o)) == o


def test_the_healthy_plan_alternates_publish_and_lookup_of_the_same_app() -> None:
    plan = reliability.plan(8000)
    assert [p.kind for p in plan[:4]] == ["publish", "lookup", "publish", "lookup"]
    assert b'"uid": "rel000-conn19"' in plan[0].raw
    assert b"rel000-.*" in plan[1].raw


# ----------------------------------------------------------------------------- admin


def test_the_admin_fill_respects_the_servers_limits() -> None:
    chunks = admin_load.batches(1_000_000, 4, 10_000)
    assert sum(apps for _, _, apps in chunks) * admin_load.CONNS_PER_APP == 1_000_000
    assert max(apps for _, _, apps in chunks) * admin_load.CONNS_PER_APP <= 10_000
    per_partition: dict[str, int] = {}
    for name, _, apps in chunks:
        per_partition[name] = per_partition.get(name, 0) + apps * admin_load.CONNS_PER_APP
    assert per_partition == {f"admin{p}": 250_000 for p in range(4)}  # <= 500,000 each
    apps = [a for _, first, n in chunks for a in range(first, first + n)]
    assert apps == list(range(50_000))  # every app once


def test_an_uneven_fill_still_places_every_app_once() -> None:
    chunks = admin_load.batches(10_100, 3, 1_000)
    apps = [a for _, first, n in chunks for a in range(first, first + n)]
    assert apps == list(range(505))


def test_admin_lookups_go_to_the_partition_holding_their_app() -> None:
    placed = {
        a: name
        for name, first, n in admin_load.batches(1_000_000, 4, 10_000)
        for a in range(first, first + n)
    }
    for p in admin_load.plan(8000, 1_000_000):
        line = p.raw.split(b"\r\n", 1)[0].decode()
        app = int(p.raw.split(b'"uid_regex": "a')[1][:6])
        assert line == f"POST /getconnection/{placed[app]} HTTP/1.1"


def _admin(p99: float, size: int, errors: dict[str, int] | None = None) -> object:
    summary = {"requests": 2000, "failures": 0, "errors": {}, "p50_ms": 1.0}
    return admin_load.AdminOutcome(
        config="gevent (default)",
        entries=1_000_000,
        partitions=4,
        fill_seconds=30.0,
        rss_mb_after_fill=900.0,
        seconds=20,
        rate=100,
        timeout=0.5,
        baseline={**summary, "p99_ms": 2.0, "max_ms": 3.0},
        loaded={**summary, "p99_ms": p99, "max_ms": p99},
        dump=admin_load.Dump(3, errors or {}, {"200": 3}, size, size, 0.1, 0.2),
    )


def test_admin_targets() -> None:
    rows = {name: ok for name, _, _, ok in admin_load.verdicts(_admin(12.0, 800_000))}
    assert rows == {
        "lookup p99 while GET / is served at 1,000,000 entries": True,
        "GET / size at 1,000,000 entries": True,
    }
    rows = {name: ok for name, _, _, ok in admin_load.verdicts(_admin(50.0, 1_000_001))}
    assert not any(rows.values())
    rows = {name: ok for name, _, _, ok in admin_load.verdicts(_admin(1, 10, {"timeout": 1}))}
    assert rows["GET / size at 1,000,000 entries"] is False


def test_the_dump_gets_are_summarised_and_survive_the_results_file() -> None:
    dump = admin_load.summarise_gets(
        [
            {"status": 200, "bytes": 100, "seconds": 0.5},
            {"status": 200, "bytes": 300, "seconds": 1.5},
            {"error": "timeout", "seconds": 120.0},
        ]
    )
    assert (dump.gets, dump.errors, dump.statuses) == (3, {"timeout": 1}, {"200": 2})
    assert (dump.bytes_median, dump.bytes_max, dump.seconds_max) == (200, 300, 1.5)
    o = _admin(1.0, 10)
    assert admin_load.from_json(asdict(o)) == o


# ----------------------------------------------------------------------------- worker classes


def test_the_worker_class_comes_from_the_servers_log() -> None:
    log = "[2026-01-01 00:00:00 +0000] [7] [INFO] Using worker: gevent\n"
    assert lanes.worker_class_in(log) == "gevent"
    assert lanes.default_config(log) == "gevent (default)"
    assert lanes.worker_class_in("Using worker: gunicorn.workers.ggevent.GeventWorker") == "gevent"
    assert lanes.worker_class_in("no such line") == "?"


def test_the_worker_class_ratio_pairs_the_runs_of_a_round() -> None:
    # The machine slows down by half in round 2: both classes slow down alike.
    assert lanes.paired_ratio([900, 450, 1000], [1000, 500, 1000]) == 0.9
    assert lanes.paired_ratio([1.0, 2.0], [1.0]) is None
    assert lanes.paired_ratio([], []) is None
    assert lanes.paired_ratio([1.0], [0.0]) is None


def test_a_ceiling_shown_beside_the_scenarios_is_not_judged() -> None:
    rows = [
        lanes.Row("publish 20 conns keep-alive", 3000, 2000, 1.5, "0.90", "0.80"),
        lanes.Row("lookup prefix N=100000", 1700, 2000, 0.85, "0.70", "0.80"),
        lanes.Row("ceiling: trivial Flask POST [x]", 100, 200, 0.5, "0.60", "0.95", judged=False),
    ]
    text = lanes.table("gevent (default)", rows)
    assert text[2].endswith("| 1.500 | yes | 0.90 | 0.80 |")
    assert text[3].endswith("| 0.850 | **no** | 0.70 | 0.80 |")
    assert text[4].endswith("| 0.500 |  | 0.60 | 0.95 |")
