"""The watch group of `make bench` (bench/watch.py): its verdict and table from given outcomes,
through a results file's JSON as `--render` reads it, and its client's parsing of an answer."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

import scenarios  # noqa: E402
import watch  # noqa: E402


def _memory(p99: float) -> watch.Outcome:
    rounds = [watch.Round(10.0, p99, p99 + 1, cpu, 20) for cpu in (40, 60, 50)]
    return watch.Outcome("memory", 1000, rounds, p50_ms=10.0, p99_ms=p99, max_ms=p99 + 1)


def _through_json(*outcomes: watch.Outcome) -> list[watch.Outcome]:
    return [watch.from_json(o) for o in json.loads(json.dumps([asdict(o) for o in outcomes]))]


@pytest.mark.parametrize(("p99", "met"), [(49.9, True), (50.0, False)])
def test_the_memory_store_is_judged_by_its_p99_against_50_ms(p99: float, met: bool) -> None:
    [(name, wanted, got, ok)] = watch.verdicts(_through_json(_memory(p99)))
    assert (wanted, got, ok) == ("p99 < 50 ms", f"p99 {p99:.1f} ms", met)
    assert "1,000 watchers" in name and "[memory store]" in name


def test_the_redis_store_is_reported_beside_the_memory_store_but_not_judged() -> None:
    redis = watch.Outcome("redis", 1000, [watch.Round(30, 80, 90, 70, 20)], 30.0, 80.0, 90.0)
    outcomes = _through_json(_memory(40.0), redis)
    assert [v[0].endswith("[memory store]") for v in watch.verdicts(outcomes)] == [True]
    rows = watch.render(outcomes)
    assert "| memory store, watch | 10.0 | 40.0 | 41.0 | 50 | 20 | yes |" in rows
    assert "| redis store, watch | 30.0 | 80.0 | 90.0 | 70 | 20 |  |" in rows


def test_a_redis_store_the_server_does_not_use_is_a_row_saying_why() -> None:
    skipped = watch.Outcome("redis", 1000, skipped="no Redis store here")
    outcomes = _through_json(_memory(40.0), skipped)
    assert "| redis store, watch | not measured: no Redis store here | | | | | |" in (
        watch.render(outcomes)
    )
    assert len(watch.verdicts(outcomes)) == 1


def test_the_poll_row_is_computed_from_the_2_s_period_and_says_so() -> None:
    rows = watch.render([_memory(40.0)])
    assert "| poll every 2 s (computed) | 1000 | 1980 | 2000 | | | |" in rows
    assert any("computed, not measured" in row for row in rows)


def test_nothing_measured_renders_nothing() -> None:
    assert watch.render([]) == []
    assert watch.verdicts([]) == []


def test_watch_is_a_group_of_make_bench_run_last() -> None:
    assert list(scenarios.GROUPS)[-1] == "watch"
    assert scenarios.parse_groups("watch") == ["watch"]


def _arrivals(*chunks: bytes) -> list[tuple[int, bytes, bytes]]:
    """What a Conn makes of ``chunks`` arriving for two requests sent one after the other."""

    async def go() -> list[tuple[int, bytes, bytes]]:
        conn = watch.Conn()

        class Sink:
            def write(self, data: bytes) -> None:
                pass

        conn.transport = Sink()  # type: ignore[assignment]
        got = []
        pending = list(chunks)
        for _ in range(2):
            done = conn.send(b"GET / HTTP/1.1\r\n\r\n")
            while pending and not done.done():
                conn.data_received(pending.pop(0))
            _, status, head, body = await done
            got.append((status, head, body))
        return got

    return asyncio.run(go())


def test_the_client_reads_an_answer_split_anywhere_and_keeps_what_follows_it() -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Registry-Index: 7\r\n\r\nhello"
    second = b"HTTP/1.1 429 TOO MANY REQUESTS\r\ncontent-length: 2\r\n\r\n{}"
    both = first + second
    got = _arrivals(both[:20], both[20:70], both[70:])
    assert [(s, b) for s, _, b in got] == [(200, b"hello"), (429, b"{}")]
    assert watch.header(got[0][1], b"X-Registry-Index") == "7"


def test_the_client_reads_a_content_length_on_the_last_header_line() -> None:
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"index": 1}'
    got = _arrivals(answer, answer)
    assert [b for _, _, b in got] == [b'{"index": 1}', b'{"index": 1}']
