"""How `make bench` turns runs into ratios and verdicts (the load itself is never a unit test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _run(rps: float, ceiling: float | None = None) -> object:
    return bench.Run(rps, int(rps * 10), 1.0, 2.0, 3.0, 0, 0.5, ceiling_rps=ceiling)


def _result(name: str, *runs: object, ceiling: str | None = "ceiling") -> object:
    return bench.Result(name, "lookup", "gthread 2 threads", 1000, 1, list(runs), ceiling=ceiling)


def test_an_interleaved_scenario_is_compared_with_the_ceiling_around_each_run() -> None:
    # The machine slows down between runs; scenario and ceiling slow down together.
    r = _result("lookup exact N=1000", _run(900, 1000), _run(450, 500), _run(720, 800))
    assert bench.paired_ratio(r) == 0.9
    ceiling = _result("ceiling", _run(1000), _run(500), _run(800), ceiling=None)
    assert bench.ratio(r, {"ceiling": ceiling}) == 0.9


def test_runs_without_a_paired_ceiling_use_the_ceilings_median() -> None:
    r = _result("lookup exact N=1000", _run(800), _run(900), _run(850))
    ceiling = _result("ceiling", _run(1000), _run(1000), _run(1000), ceiling=None)
    assert bench.paired_ratio(r) is None
    assert bench.ratio(r, {"ceiling": ceiling}) == 0.85


def test_the_size_check_compares_the_lookups_ratios_when_runs_were_interleaved() -> None:
    small = _result("lookup prefix N=1000", _run(900, 1000), _run(900, 1000), _run(900, 1000))
    # Measured while the machine was 20% slower: raw req/s fell 20%, the ratio did not.
    big = _result("lookup prefix N=100000", _run(720, 800), _run(720, 800), _run(720, 800))
    verdicts = {name: (got, ok) for name, _, got, ok in bench.verdicts([small, big])}
    got, ok = verdicts["lookup prefix: N=100000 vs N=1000"]
    assert got.startswith("+0.0%") and "-20.0%" in got
    assert ok


def test_the_size_check_fails_when_the_big_partition_is_slower_against_its_ceiling() -> None:
    small = _result("lookup prefix N=1000", _run(900, 1000), _run(900, 1000), _run(900, 1000))
    big = _result("lookup prefix N=100000", _run(700, 1000), _run(700, 1000), _run(700, 1000))
    verdicts = {name: (got, ok) for name, _, got, ok in bench.verdicts([small, big])}
    got, ok = verdicts["lookup prefix: N=100000 vs N=1000"]
    assert got.startswith("-22.2%")
    assert not ok


class _ScriptedBench(bench.Bench):
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
        bench.Scenario("publisher", keep, []),
        bench.Scenario("ceiling close", close_ceiling, [], close=True),
        bench.Scenario("publisher close", close, [], True, close_ceiling),
    ]
    # One round: C keep C close-ceiling C close-publish C.
    script = [("ceiling", 2000.0), ("publisher", 1700.0), ("ceiling", 2000.0)]
    script += [("ceiling close", 1500.0), ("ceiling", 2000.0)]
    script += [("publisher close", 1350.0), ("ceiling", 2000.0)]
    _ScriptedBench(1, tmp_path, script).interleaved("ceiling", ceiling, scenarios)
    verdicts = {name: (wanted, got, ok) for name, wanted, got, ok in bench.verdicts([keep, close])}
    assert verdicts["publish 20 conns keep-alive"] == (">= 0.80 of Flask", "0.850", True)
    assert verdicts["publish 20 conns Connection: close"] == (
        ">= 0.80 of Flask, Connection: close",
        "0.900",
        True,
    )
    # The close ceiling itself is still shown against the keep-alive ceiling around it.
    assert bench.paired_ratio(close_ceiling) == 0.75


def test_a_variant_names_the_environment_of_its_server() -> None:
    assert bench.parse_variant("shipped") == ("shipped", {})
    assert bench.parse_variant("old:PYTHONPATH=/src/a=b,CONNECTION_FLASK_DEBUG=0") == (
        "old",
        {"PYTHONPATH": "/src/a=b", "CONNECTION_FLASK_DEBUG": "0"},
    )


@pytest.mark.parametrize("spec", ["x:NOVALUE", ":A=1", "x:=1"])
def test_a_malformed_variant_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="variant"):
        bench.parse_variant(spec)
