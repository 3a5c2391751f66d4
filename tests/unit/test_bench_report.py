"""How `make bench` turns runs into ratios and verdicts (the load itself is never a unit test)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

import lanes  # noqa: E402
import load  # noqa: E402
import report  # noqa: E402
import scenarios  # noqa: E402


def _run(rps: float, ceiling: float | None = None) -> object:
    return load.Run(rps, int(rps * 10), 1.0, 2.0, 3.0, 0, 0.5, ceiling_rps=ceiling)


def _result(name: str, *runs: object, ceiling: str | None = "ceiling") -> object:
    return load.Result(name, "lookup", "gthread 2 threads", 1000, 1, list(runs), ceiling=ceiling)


def test_an_interleaved_scenario_is_compared_with_the_ceiling_around_each_run() -> None:
    # The machine slows down between runs; scenario and ceiling slow down together.
    r = _result("lookup exact N=1000", _run(900, 1000), _run(450, 500), _run(720, 800))
    assert load.paired_ratio(r) == 0.9
    ceiling = _result("ceiling", _run(1000), _run(500), _run(800), ceiling=None)
    assert report.ratio(r, {"ceiling": ceiling}) == 0.9


def test_runs_without_a_paired_ceiling_use_the_ceilings_median() -> None:
    r = _result("lookup exact N=1000", _run(800), _run(900), _run(850))
    ceiling = _result("ceiling", _run(1000), _run(1000), _run(1000), ceiling=None)
    assert load.paired_ratio(r) is None
    assert report.ratio(r, {"ceiling": ceiling}) == 0.85


def test_the_size_check_compares_the_lookups_ratios_when_runs_were_interleaved() -> None:
    small = _result("lookup prefix N=1000", _run(900, 1000), _run(900, 1000), _run(900, 1000))
    # Measured while the machine was 20% slower: raw req/s fell 20%, the ratio did not.
    big = _result("lookup prefix N=100000", _run(720, 800), _run(720, 800), _run(720, 800))
    verdicts = {name: (got, ok) for name, _, got, ok in report.verdicts([small, big])}
    got, ok = verdicts["lookup prefix: N=100000 vs N=1000"]
    assert got.startswith("+0.0%") and "-20.0%" in got
    assert ok


def test_the_size_check_fails_when_the_big_partition_is_slower_against_its_ceiling() -> None:
    small = _result("lookup prefix N=1000", _run(900, 1000), _run(900, 1000), _run(900, 1000))
    big = _result("lookup prefix N=100000", _run(700, 1000), _run(700, 1000), _run(700, 1000))
    verdicts = {name: (got, ok) for name, _, got, ok in report.verdicts([small, big])}
    got, ok = verdicts["lookup prefix: N=100000 vs N=1000"]
    assert got.startswith("-22.2%")
    assert not ok


class _ScriptedBench(load.Bench):
    """interleaved() without servers or wrk: each run's req/s comes from a script, in order."""

    def __init__(self, rounds: int, logdir: Path, script: list[tuple[str, float]]) -> None:
        super().__init__(rounds, 10, 0, "wrk", logdir)
        self.script = script

    def one_run(self, srv: object, reqfile: Path, close: bool) -> object:
        expected, rps = self.script.pop(0)
        assert (srv, close) == (expected, "close" in expected)
        return _run(rps)


def test_publish_with_connection_close_is_judged_against_the_ceiling_measured_likewise(
    tmp_path: Path,
) -> None:
    ceiling = _result("ceiling: trivial Flask POST [gthread 2 threads]", ceiling=None)
    close_ceiling = _result("close ceiling", ceiling=ceiling.name)
    keep = _result("publish 20 conns keep-alive", ceiling=ceiling.name)
    close = _result("publish 20 conns Connection: close", ceiling=close_ceiling.name)
    scenarios = [
        load.Scenario("publisher", keep, []),
        load.Scenario("ceiling close", close_ceiling, [], close=True),
        load.Scenario("publisher close", close, [], True, close_ceiling),
    ]
    # One round: C keep C close-ceiling C close-publish C.
    script = [("ceiling", 2000.0), ("publisher", 1700.0), ("ceiling", 2000.0)]
    script += [("ceiling close", 1500.0), ("ceiling", 2000.0)]
    script += [("publisher close", 1350.0), ("ceiling", 2000.0)]
    _ScriptedBench(1, tmp_path, script).interleaved("ceiling", ceiling, scenarios)
    verdicts = {name: (wanted, got, ok) for name, wanted, got, ok in report.verdicts([keep, close])}
    assert verdicts["publish 20 conns keep-alive"] == (">= 0.80 of Flask", "0.850", True)
    assert verdicts["publish 20 conns Connection: close"] == (
        ">= 0.80 of Flask, Connection: close",
        "0.900",
        True,
    )
    # The close ceiling itself is still shown against the keep-alive ceiling around it.
    assert load.paired_ratio(close_ceiling) == 0.75


def test_a_variant_names_the_environment_of_its_server() -> None:
    assert scenarios.parse_variant("shipped") == ("shipped", {})
    assert scenarios.parse_variant("old:PYTHONPATH=/src/a=b,CONNECTION_FLASK_DEBUG=0") == (
        "old",
        {"PYTHONPATH": "/src/a=b", "CONNECTION_FLASK_DEBUG": "0"},
    )


@pytest.mark.parametrize("spec", ["x:NOVALUE", ":A=1", "x:=1"])
def test_a_malformed_variant_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="variant"):
        scenarios.parse_variant(spec)


def test_only_names_groups_and_runs_them_in_their_order() -> None:
    assert scenarios.parse_groups("admin, main") == ["main", "admin"]
    assert scenarios.parse_groups(",".join(scenarios.GROUPS)) == list(scenarios.GROUPS)
    with pytest.raises(ValueError, match="unknown group"):
        scenarios.parse_groups("main,reliabilty")
    with pytest.raises(ValueError, match="none named"):
        scenarios.parse_groups(" , ")


def test_two_worker_classes_take_turns_each_against_its_own_ceiling(tmp_path: Path) -> None:
    default = _result("ceiling: trivial Flask POST [gevent (default)]", ceiling=None)
    ref = _result("ceiling: trivial Flask POST [gthread 2 threads]", ceiling=None)
    a1 = _result("publish 20 conns keep-alive", ceiling=default.name)
    a2 = _result("lookup broad N=1000", ceiling=default.name)
    b1 = _result("publish 20 conns keep-alive [gthread 2 threads]", ceiling=ref.name)
    a1.versus = b1.name
    lanes_ = [
        load.Lane("CA", default, [load.Scenario("a1", a1, []), load.Scenario("a2", a2, [])]),
        load.Lane("CB", ref, [load.Scenario("b1", b1, []), None]),
    ]
    # Round 1: CA CB a1 b1 CA CB a2 CA; round 2 the other way round where both lanes run.
    script = [("CA", 1000.0), ("CB", 800.0), ("a1", 900.0), ("b1", 700.0)]
    script += [("CA", 1000.0), ("CB", 800.0), ("a2", 100.0), ("CA", 1000.0)]
    script += [("CB", 400.0), ("CA", 500.0), ("b1", 350.0), ("a1", 450.0)]
    script += [("CB", 400.0), ("CA", 500.0), ("a2", 50.0), ("CA", 500.0)]
    bench_ = _ScriptedBench(2, tmp_path, script)
    bench_.interleaved_lanes(lanes_)
    assert not bench_.script
    assert [r.ceiling_rps for r in a1.runs] == [1000.0, 500.0]
    assert [r.ceiling_rps for r in b1.runs] == [800.0, 400.0]
    assert load.paired_ratio(a1) == 0.9
    assert load.paired_ratio(b1) == 0.875
    assert len(default.runs) == 6 and len(ref.runs) == 4
    rows = report.lane_rows([default, ref, a1, a2, b1])
    # The machine halved its speed in round 2: the pair ratio (900/700, 450/350) does not move.
    # Medians of two runs are the lower one (Result.median).
    assert rows == [lanes.Row("publish 20 conns keep-alive", 450.0, 350.0, 9 / 7, "0.90", "0.88")]


def test_lanes_must_line_up(tmp_path: Path) -> None:
    a = load.Lane("CA", _result("a", ceiling=None), [None])
    b = load.Lane("CB", _result("b", ceiling=None), [None, None])
    with pytest.raises(ValueError, match="same number of slots"):
        _ScriptedBench(1, tmp_path, []).interleaved_lanes([a, b])


def test_the_report_shows_every_group_it_has() -> None:
    default = _result("ceiling: trivial Flask POST [gevent (default)]", ceiling=None)
    default.config = "gevent (default)"
    a1 = _result("lookup exact N=1000", _run(900, 1000), ceiling=default.name)
    a1.config, a1.group, a1.versus = "gevent (default)", "lookup", "lookup exact N=1000 [ref]"
    b1 = _result("lookup exact N=1000 [ref]", _run(800, 1000), ceiling=default.name)
    b1.config = "gthread 2 threads"
    default.runs = [_run(1000), _run(1000), _run(1000)]
    rel = {
        "config": "gevent (default)",
        "env": {},
        "hold_seconds": 20.0,
        "rate": 100.0,
        "timeout": 0.5,
        "requests": 2000,
        "failures": 0,
        "errors": {},
        "p50_ms": 0.7,
        "p99_ms": 1.9,
        "max_ms": 90.0,
        "held": [],
    }
    data = {
        "date": "today",
        "command": "python bench/run.py",
        "runs": 1,
        "duration": 10,
        "warmup": 2,
        "wall_seconds": 60,
        "machine": dict.fromkeys(
            ("cpu", "cores", "memory", "kernel", "os", "python", "packages", "wrk"), "?"
        ),
        "server_command": "gunicorn",
        "server_env": "",
        "results": [asdict(r) for r in (default, a1, b1)],
        "reliability": [rel],
        "admin": None,
    }
    text = report.render(data)
    assert "### Scenarios (gevent (default): the shipped default)" in text
    # The reference worker class has no table of its own: its figures are in the comparison.
    assert "### Scenarios (gthread 2 threads" not in text
    assert "### Worker class: gevent (default) against gthread 2 threads" in text
    # Judged in the worker-class table, not repeated among the targets.
    assert "| lookup exact N=1000 | 900 | 800 | 1.125 | yes |" in text
    assert "default vs gthread 2 threads" not in text
    assert "### Reliability" in text and "| gevent (default) | 2,000 | 0 |" in text
    assert "Machine steadiness: the Flask ceilings run between the main scenarios gave " in text
    assert "[gevent (default)] 3 runs, 1,000 to 1,000 req/s." in text


def test_the_docs_generated_section_is_what_the_committed_results_file_renders() -> None:
    # `make bench` writes both; `bench/run.py --render docs/bench/results.json` must redraw
    # the section exactly, so the doc never shows figures the results file does not hold.
    data = json.loads((report.OUT_DIR / "results.json").read_text())
    doc = report.DOC.read_text()
    start, end = doc.index(report.BEGIN), doc.index(report.END) + len(report.END)
    assert report.render(data) == doc[start:end]
