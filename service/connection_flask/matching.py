"""uid_regex -> Matcher: literal, literal prefix, or general pattern.

Patterns come from the network, so they are run on RE2 (linear time in the uid's length, no
catastrophic backtracking) with the contract's full-match semantics. A small scan of the pattern
reads its literal head, which lets the registry answer most lookups from its indexes instead of
testing every uid; whatever the scan does not understand is left to the regex.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the client's error, answered with a 400
_RE2_OPTIONS.never_capture = True  # groups are never read back; RE2 is faster without them
# Memory RE2 may use per compiled pattern (program plus DFA cache; default 8 MiB). Patterns come
# from anyone who can reach the port and up to 1024 stay cached, so at the default a client could
# pin ~5 GiB with patterns like \pL{0,400}; at 1 MiB the cache is bounded by ~1 GiB and bigger
# patterns are refused with a 400 ("pattern too large"). DAQ uid patterns need a few KiB.
_RE2_OPTIONS.max_mem = 1 << 20

# Python-only syntax; RE2 rejects it and the client deserves to know why.
_UNSUPPORTED_SYNTAX = re.compile(r"\\[1-9]|\(\?<?[=!]|\(\?P=")


class PatternError(ValueError):
    """The pattern cannot be run: invalid, or uses a feature RE2 does not support."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """How to find uids matching one pattern.

    Exactly one shape applies:
    - ``literal`` set: the pattern matches that one uid.
    - ``any_tail`` True: ``prefix`` followed by anything of at least ``min_tail`` characters,
      except a newline (``.`` does not match newline), e.g. ``app0042-.*``.
    - otherwise ``regex`` decides, and every match still starts with ``prefix``.
    """

    pattern: str
    prefix: str
    literal: str | None
    any_tail: bool
    min_tail: int
    regex: Any  # re2._Regexp: the library ships no type hints


@functools.lru_cache(maxsize=1024)
def compile_matcher(pattern: str) -> Matcher:
    """Compile a uid_regex; raise PatternError with a message fit for the client."""
    try:
        regex = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args else "invalid pattern"
        raise PatternError(_explain(pattern, detail)) from None
    prefix, tail = _literal_head(pattern)
    if tail is None:
        return Matcher(pattern, prefix, None, False, 0, regex)
    if not tail:
        return Matcher(pattern, prefix, prefix, False, 0, regex)
    if tail in _ANY_TAIL:
        return Matcher(pattern, prefix, None, True, _ANY_TAIL[tail], regex)
    return Matcher(pattern, prefix, None, False, 0, regex)


# A tail of any characters but newline, and the fewest it takes.
_ANY_TAIL = {(".", "*"): 0, (".", "*", "?"): 0, (".", "+"): 1, (".", "+", "?"): 1}


def _explain(pattern: str, detail: str) -> str:
    if _UNSUPPORTED_SYNTAX.search(pattern):
        return (
            f"uid_regex uses a backreference or lookaround, which the RE2 engine cannot run "
            f"({detail})"
        )
    return f"uid_regex is not a valid regular expression ({detail})"


def _literal_head(pattern: str) -> tuple[str, tuple[str, ...] | None]:
    """Split a pattern RE2 accepted into its literal prefix and the operators after it.

    The operators are () for a pure literal; None when only the prefix is known (a literal
    character follows the first operator) or nothing is (a top-level ``|``): then only the
    regex decides.
    """
    atoms = _atoms(pattern)
    if atoms is None:
        return "", None
    # In a full match, a leading ^ / \A and a trailing $ / \z always hold. (Flags that would
    # change that, such as (?m), are a group: what follows them is never read as a shape.)
    start, end = 0, len(atoms)
    while start < end and atoms[start] in ((False, "^"), (False, "\\A")):
        start += 1
    while end > start and atoms[end - 1] in ((False, "$"), (False, "\\z")):
        end -= 1
    i = start
    while i < end and atoms[i][0]:
        i += 1
    if start < i < end and (
        atoms[i][1] in ("*", "+", "?", "{") or atoms[i : i + 2] == [(False, "("), (False, "?")]
    ):
        # The last literal is repeated: not part of every match. After a (?...) group it may
        # be too: RE2 reads a flag group such as (?i) as nothing, so in a(?i)* the * repeats
        # the a. Dropping it costs a shorter prefix, never a wrong one.
        i -= 1
    prefix = "".join(text for _, text in atoms[start:i])
    rest = atoms[i:end]
    if any(literal for literal, _ in rest):
        return prefix, None
    return prefix, tuple(text for _, text in rest)


_CONTROL = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}


def _atoms(pattern: str) -> list[tuple[bool, str]] | None:
    """The pattern as (literal, text) atoms: a literal character, or an operator (an escape
    like ``\\d``, a class, or one of ``.^$*+?{}()|``). None for a top-level ``|`` (no prefix
    is common to all matches) or a class the scan does not follow (``[[:alpha:]]``). Only a
    prefix and a tail of operators are read from the result, so an escape read short (``\\x44``
    as ``\\x`` then ``4``, ``4``) costs a shorter prefix, never a wrong one."""
    atoms: list[tuple[bool, str]] = []
    depth = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped and not escaped.isalnum():
                atoms.append((True, escaped))
            elif escaped in _CONTROL:
                atoms.append((True, _CONTROL[escaped]))
            else:
                atoms.append((False, pattern[i : i + 2]))
            i += 2
        elif c == "[":
            end = _class_end(pattern, i)
            if end is None:
                return None
            atoms.append((False, pattern[i:end]))
            i = end
        else:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "|" and depth == 0:
                return None
            atoms.append((c not in ".^$*+?{}()|", c))
            i += 1
    return atoms


def _class_end(pattern: str, start: int) -> int | None:
    """Just past the ``]`` closing the class that opens at ``start``."""
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1  # a ] first in a class is a member
    while i < len(pattern) and pattern[i] != "]":
        if pattern[i] == "[":
            return None
        i += 2 if pattern[i] == "\\" else 1
    return i + 1 if i < len(pattern) else None
