"""uid_regex -> Matcher: the shape chosen, full-match semantics, RE2-only errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ("(?s)a.*", None, "", False),
        ("app.*?", None, "app", True),
        ("tpset_1?0", None, "tpset_", False),
        ("app00(42|20)-conn0?7", None, "app00", False),
        ("DRO-000|tpset_.*", None, "", False),
        ("a[|(]b|", None, "", False),
        ("a[|(]b", None, "a", False),
        (r"line\nbreak", "line\nbreak", "line\nbreak", False),
        (r"price\$", "price$", "price$", False),
        (r"trailing\n$", "trailing\n", "trailing\n", False),
        (r"\x44RO", None, "", False),
    ],
)
def test_pattern_shape(pattern: str, literal: str | None, prefix: str, any_tail: bool) -> None:
    m = compile_matcher(pattern)
    assert (m.literal, m.prefix, m.any_tail) == (literal, prefix, any_tail)


# Pieces of patterns that a literal/prefix scan could misread.
PIECES = ["a", "b", "-", ".", "*", "+", "?", "{2}", "|", "(", ")", "(?:", "[a|]", "[^]a]", "^", "$"]
PIECES += [r"\A", r"\z", r"\b", r"\.", r"\$", r"\|", r"\n", r"\d", r"\x61", "(?i)", "(?s)"]


@settings(max_examples=600, deadline=None)
@given(
    pattern=st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
    uids=st.lists(
        st.one_of(
            st.sampled_from(["", "a", "b", "ab", "aa", "a-", "a\nb", "a$", "a|b", "a.", "1", "A"]),
            st.text(alphabet="ab-.|$\n1A", max_size=6),
        ),
        max_size=10,
    ),
)
def test_the_shape_read_from_a_pattern_never_disagrees_with_its_regex(
    pattern: str, uids: list[str]
) -> None:
    try:
        m = compile_matcher(pattern)
    except PatternError:
        return
    for uid in uids + [m.prefix + u for u in uids]:
        matched = m.regex.fullmatch(uid) is not None
        assert not matched or uid.startswith(m.prefix), (pattern, uid)
        if m.literal is not None:
            assert matched is (uid == m.literal), (pattern, uid)
        if m.any_tail:
            tail = uid[len(m.prefix) :]
            expected = uid.startswith(m.prefix) and len(tail) >= m.min_tail and "\n" not in tail
            assert matched is expected, (pattern, uid)


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
    assert (compile_matcher(pattern).regex.fullmatch(uid) is not None) is expected
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
    assert m.regex.fullmatch("abc")
    assert m.regex.fullmatch("ab1") is None


def test_a_literal_before_a_flag_group_and_a_quantifier_is_not_a_prefix() -> None:
    # RE2 reads (?i) as nothing, so the * repeats the a: '' matches, and must not be missed.
    m = compile_matcher("a(?i)*")
    assert m.regex.fullmatch("") is not None
    assert "".startswith(m.prefix)
