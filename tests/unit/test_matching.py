"""uid_regex -> Matcher: the shape chosen, full-match semantics, RE2-only errors."""

from __future__ import annotations

import re

import pytest

from connection_flask.matching import PatternError, compile_matcher


@pytest.mark.parametrize(
    ("pattern", "literal", "prefix", "any_tail"),
    [
        ("app0042-conn07", "app0042-conn07", "app0042-conn07", False),
        ("^DRO-000$", "DRO-000", "DRO-000", False),
        ("app0042-.*", None, "app0042-", True),
        ("^app0042-.*$", None, "app0042-", True),
        (".*", None, "", True),
        ("app.+", None, "app", True),
        (r"app\.x", "app.x", "app.x", False),
        ("app[0-9]+-.*", None, "app", False),
        ("a|b", None, "", False),
        ("(?i)abc", None, "", False),
    ],
)
def test_pattern_shape(pattern: str, literal: str | None, prefix: str, any_tail: bool) -> None:
    m = compile_matcher(pattern)
    assert (m.literal, m.prefix, m.any_tail) == (literal, prefix, any_tail)


@pytest.mark.parametrize(
    ("pattern", "uid", "expected"),
    [
        ("DRO", "DRO-000", False),
        ("DRO.*", "DRO-000", True),
        ("DRO.*", "DRO", True),
        ("DRO.+", "DRO", False),
        (".*", "line\nbreak", False),
        ("a.*", "a\n", False),
        ("app[0-9]+-conn", "app12-conn", True),
        ("app[0-9]+-conn", "app12-connX", False),
        ("(?i)abc", "ABC", True),
    ],
)
def test_full_match(pattern: str, uid: str, expected: bool) -> None:
    assert compile_matcher(pattern).matches(uid) is expected
    assert (re.fullmatch(pattern, uid) is not None) is expected


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"(?!a)b", r"(?<=a)b", r"(?P<x>a)(?P=x)"])
def test_backreferences_and_lookaround_are_refused_with_a_reason(pattern: str) -> None:
    with pytest.raises(PatternError, match="backreference or lookaround"):
        compile_matcher(pattern)


@pytest.mark.parametrize("pattern", ["(", "[a-", "a{2,1}", "*"])
def test_invalid_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(PatternError, match="not a valid regular expression"):
        compile_matcher(pattern)


def test_syntax_only_re2_knows_still_works() -> None:
    m = compile_matcher(r"\pL+")
    assert m.matches("abc") and not m.matches("ab1")
