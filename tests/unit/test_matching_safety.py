"""Patterns come from the network: they must run in linear time, never stall other requests,
and keep Python ``re``'s full-match results for the syntax DAQ clients use (issue 3).

The old server ran ``(a+)+$`` with Python ``re`` under its global lock: 15-19 s for one
28-character uid, doubling with each character, with every other request frozen meanwhile.
Python ``re`` is therefore never run here on the pathological inputs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

import pytest
from flask import Flask

from connection_flask.matching import compile_matcher
from connection_flask.registry import Connection, Registry
from tests.helpers import conn

# Catastrophic for a backtracking engine on a long run of "a" that does not match in the end.
PATHOLOGICAL = ["(a+)+$", "^(a+)+$", "(a|aa)+$", "(a*)*b", "(a|a)*c", "(.*a){12}", "(\\w+\\s?)+$"]
# The old server's 28 characters, a longer run, and the longest uid the service accepts (1024).
LONG_UIDS = ["a" * 28 + "!", "a" * 100 + "b", "a" * 1023 + "!", "a" * 1024]
WELL_UNDER = 0.1  # seconds: the bound for one pathological lookup


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
@pytest.mark.parametrize("uid", LONG_UIDS, ids=lambda u: f"len{len(u)}")
def test_pathological_pattern_is_linear(pattern: str, uid: str) -> None:
    matcher = compile_matcher(pattern)
    start = time.perf_counter()
    result = matcher.regex.fullmatch(uid) is not None
    took = time.perf_counter() - start
    assert took < WELL_UNDER, f"{pattern!r} on {len(uid)} characters took {took:.3f} s"
    # What the full match must be, worked out by hand instead of running Python re.
    if pattern in ("(a+)+$", "^(a+)+$", "(a|aa)+$"):
        assert result is (set(uid) == {"a"})
    if pattern in ("(a*)*b", "(a|a)*c"):
        assert result is (uid == "a" * 100 + "b" and pattern == "(a*)*b")


def test_pathological_lookup_answers_fast_while_other_partitions_keep_answering(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest keeps every log record; the background loop's timing lines would pile up by the
    # thousand and the garbage collector's passes over them would stall both threads.
    caplog.set_level(logging.WARNING, logger="connection_flask")
    client = app.test_client()
    victims = [conn(u, data_type="T") for u in LONG_UIDS]
    r = client.post("/publish", json={"partition": "victim", "connections": victims})
    assert r.status_code == 200
    others = [conn(f"app{i:04d}-conn07", data_type="T") for i in range(50)]
    r = client.post("/publish", json={"partition": "other", "connections": others})
    assert r.status_code == 200

    stop = threading.Event()
    other_latencies: list[float] = []
    failures: list[Any] = []

    def other_lookups() -> None:
        own = app.test_client()
        while not stop.is_set():
            start = time.perf_counter()
            r = own.post("/getconnection/other", json={"uid_regex": "app0042-.*", "data_type": "T"})
            other_latencies.append(time.perf_counter() - start)
            if r.status_code != 200 or [e["uid"] for e in r.get_json()] != ["app0042-conn07"]:
                failures.append((r.status_code, r.data))

    background = threading.Thread(target=other_lookups, daemon=True)
    background.start()
    try:
        victim_latencies = []
        for _ in range(10):
            for pattern in PATHOLOGICAL:
                start = time.perf_counter()
                r = client.post(
                    "/getconnection/victim", json={"uid_regex": pattern, "data_type": "T"}
                )
                victim_latencies.append(time.perf_counter() - start)
                assert r.status_code == 200
                found = [e["uid"] for e in r.get_json()]
                if pattern in ("(a+)+$", "^(a+)+$", "(a|aa)+$"):
                    assert found == ["a" * 1024]
    finally:
        stop.set()
        background.join(5)
    assert not background.is_alive()
    assert not failures, failures[:3]
    assert max(victim_latencies) < WELL_UNDER, (
        f"slowest pathological lookup {max(victim_latencies):.3f} s"
    )
    # The other partition kept answering all along, and promptly.
    assert len(other_latencies) >= 20
    assert max(other_latencies) < WELL_UNDER, f"slowest other lookup {max(other_latencies):.3f} s"


# ----------------------------------------------------------------------------- RE2 vs re

UIDS = [
    "DRO",
    "DRO-000",
    "DRO-000-tp_to_trigger",
    "DRO-001-tp_to_trigger",
    "dro-000",
    "TP-17",
    "app0042-conn07",
    "app0042-conn7",
    "app0042-conn17",
    "app0420-conn07",
    "app0042-",
    "app0042",
    "tpset_0",
    "tpset_10",
    "tpset_",
    "ru_apa1_link5",
    "ru_apa12_link10",
    "timesync",
    "timesync_hsi",
    "a.b",
    "aXb",
    "a-b",
    "a+b",
    "a\\b",
    "a b",
    "x",
    "xx",
    "xxx",
    "line\nbreak",
    "trailing\n",
    "\nleading",
    "dqm[0]",
    "hsi{1}",
    "ÄÖÜ-1",
]

PATTERNS = [
    # any character
    ".*",
    ".+",
    ".*?",
    "DRO.*",
    "DRO.+",
    "DRO-.*",
    "app0042-.*",
    "app0042-.+",
    ".*conn07",
    ".*-.*",
    ".*_to_.*",
    "a.b",
    "^.*$",
    # literals and escapes
    "DRO",
    "DRO-000",
    "app0042-conn07",
    "a\\.b",
    "a\\-b",
    "a\\+b",
    "a\\\\b",
    "a\\ b",
    "dqm\\[0\\]",
    "hsi\\{1\\}",
    "line\\nbreak",
    "\\x44RO",
    # classes
    "[A-Z]+-[0-9]+",
    "app[0-9]{4}-conn[0-9]{2}",
    "app\\d{4}-conn\\d\\d",
    "[^-]+",
    "[^-]+-.*",
    "[a-z]+_[a-z0-9]+_link[0-9]+",
    "\\w+",
    "[\\w.]+",
    "\\S+",
    "a\\sb",
    "[.]*",
    "ru_apa[12]_link[0-9]",
    "a[.X-]b",
    # alternation
    "DRO|TP-17",
    "DRO|TP.*",
    "(DRO|TP)-.*",
    "(?:dro|DRO)-0+",
    "DRO-000|tpset_.*",
    "timesync(_hsi)?|x+",
    "(app|ru)\\w*",
    # anchors
    "^DRO$",
    "^DRO",
    "DRO$",
    "^app0042-.*$",
    "trailing$",
    "trailing\\n$",
    "\\Atpset_0",
    "timesync\\b.*",
    # quantifiers
    "x?",
    "x*",
    "x+",
    "x{2}",
    "x{1,2}",
    "x{2,}",
    "x+?",
    "tpset_1?0",
    "tpset_[0-9]*",
    "tpset_[0-9]+?",
    "app0042-conn0?7",
    "app00(42|20)-conn0?7",
    # flags DAQ scripts use
    "(?i)dro-000",
    "(?s)line.break",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_re2_agrees_with_python_re_on_full_match(pattern: str) -> None:
    regex = compile_matcher(pattern).regex
    for uid in UIDS:
        expected = re.fullmatch(pattern, uid) is not None
        got = regex.fullmatch(uid) is not None
        assert got is expected, f"{pattern!r} on {uid!r}: re says {expected}"


@pytest.fixture(scope="module")
def filled_registry() -> Registry:
    registry = Registry(ttl=3600, grace=60)
    # Each uid twice over: once with the looked-up data_type, once (suffixed) with another,
    # so the data_type filter is exercised on every pattern as well.
    registry.publish(
        "p",
        [Connection(u, f"tcp://h:{i}", "T", 0) for i, u in enumerate(UIDS)]
        + [Connection(u + "~", f"tcp://h:{i}", "U", 1) for i, u in enumerate(UIDS)],
    )
    return registry


@pytest.mark.parametrize("pattern", PATTERNS)
def test_registry_lookup_agrees_with_python_re(filled_registry: Registry, pattern: str) -> None:
    found = filled_registry.lookup("p", compile_matcher(pattern), "T")
    assert found is not None
    uids = [json.loads(entry)["uid"] for entry in found]
    assert uids == sorted(u for u in UIDS if re.fullmatch(pattern, u))


@pytest.mark.parametrize("pattern", PATTERNS[::5])
def test_http_lookup_agrees_with_python_re(app: Flask, pattern: str) -> None:
    client = app.test_client()
    r = client.post(
        "/publish",
        json={"partition": "p", "connections": [conn(u, data_type="T") for u in UIDS]},
    )
    assert r.status_code == 200
    r = client.post("/getconnection/p", json={"uid_regex": pattern, "data_type": "T"})
    assert r.status_code == 200
    assert [e["uid"] for e in r.get_json()] == sorted(u for u in UIDS if re.fullmatch(pattern, u))


def test_known_difference_unicode_digits_and_words() -> None:
    """RE2's \\d and \\w are ASCII-only; Python's match any Unicode digit or letter. DAQ uids
    are ASCII, so this never changes a lookup; written down so nobody is surprised."""
    arabic_three = "\u0663"
    assert re.fullmatch(r"\d", arabic_three)
    assert compile_matcher(r"\d").regex.fullmatch(arabic_three) is None
    assert re.fullmatch(r"\w+", "Ä")
    assert compile_matcher(r"\w+").regex.fullmatch("Ä") is None


def test_known_difference_open_lower_bound() -> None:
    """Python reads ``x{,2}`` as ``x{0,2}``; RE2 reads it as the literal text ``x{,2}``. Not
    syntax DAQ clients use (they write ``x{0,2}``, which both engines agree on)."""
    assert re.fullmatch("x{,2}", "x")
    assert compile_matcher("x{,2}").regex.fullmatch("x") is None
    assert compile_matcher("x{0,2}").regex.fullmatch("x")


@pytest.mark.parametrize("pattern", ["app.*", ".*", "app[0-9]+", "app1"])
def test_every_lookup_path_sees_a_republished_uri(pattern: str) -> None:
    """Literal, prefix, broad and regex lookups all answer the latest publish of a uid."""
    registry = Registry(ttl=3600, grace=60)
    registry.publish("p", [Connection("app1", "tcp://old:1", "T", 0)])
    registry.publish("p", [Connection("app1", "tcp://new:2", "T", 0, capacity=5)])
    found = registry.lookup("p", compile_matcher(pattern), "T")
    assert found is not None
    assert [json.loads(e) for e in found] == [
        {"uid": "app1", "uri": "tcp://new:2", "connection_type": 0, "data_type": "T", "capacity": 5}
    ]


def test_indexed_answers_follow_expiry_and_revival() -> None:
    """The `prefix.*` answers served without per-entry checks while every entry is live must
    drop an entry the moment it expires and take it back when it is republished."""
    now = [1000.0]
    registry = Registry(ttl=10, grace=60, clock=lambda: now[0])
    conns = [Connection(f"app{i}-c", f"tcp://h:{i}", "T", 0) for i in range(5)]
    registry.publish("p", conns)

    def found(pattern: str) -> list[str]:
        answer = registry.lookup("p", compile_matcher(pattern), "T")
        assert answer is not None
        return [json.loads(e)["uid"] for e in answer]

    everyone = [c.uid for c in conns]
    assert found(".*") == found("app.*") == everyone
    now[0] += 8
    registry.publish("p", conns[1:])  # app0-c is not republished
    assert found(".*") == everyone
    now[0] += 2.5  # app0-c is now 10.5 s old
    assert found(".*") == found("app.*") == everyone[1:]
    assert found("app0.*") == []
    registry.publish("p", conns[:1])
    assert found(".*") == found("app.*") == everyone
    assert found("app0.*") == ["app0-c"]
    now[0] += 10.5  # nobody republished: all expired
    assert found(".*") == found("app.*") == found("app[0-9]-c") == []
