"""uid_regex -> Matcher: literal, literal prefix, or general pattern.

Patterns come from the network, so they are run on RE2 (linear time in the uid's length, no
catastrophic backtracking) with the contract's full-match semantics. Python's own parser is used
only to *read* the pattern's literal head, which lets the registry answer most lookups from its
indexes instead of testing every uid.
"""

from __future__ import annotations

import functools
import re
import re._constants as sre_c  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
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

_NO_EXTRA_FLAGS = sre_c.SRE_FLAG_UNICODE  # Python's default for str patterns
# Python-only syntax; RE2 rejects it and the client deserves to know why.
_UNSUPPORTED_SYNTAX = re.compile(r"\\[1-9]|\(\?<?[=!]|\(\?P=")
_ANY_REPEAT = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT)


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

    def matches(self, uid: str) -> bool:
        if self.literal is not None:
            return uid == self.literal
        if not uid.startswith(self.prefix):
            return False
        if self.any_tail:
            plen = len(self.prefix)
            return len(uid) - plen >= self.min_tail and "\n" not in uid[plen:]
        return self.regex.fullmatch(uid) is not None


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
    if tail == []:
        return Matcher(pattern, prefix, prefix, False, 0, regex)
    min_tail = _any_char_repeat(tail)
    if min_tail is not None:
        return Matcher(pattern, prefix, None, True, min_tail, regex)
    return Matcher(pattern, prefix, None, False, 0, regex)


def _explain(pattern: str, detail: str) -> str:
    if _UNSUPPORTED_SYNTAX.search(pattern):
        return (
            f"uid_regex uses a backreference or lookaround, which the RE2 engine cannot run "
            f"({detail})"
        )
    return f"uid_regex is not a valid regular expression ({detail})"


def _literal_head(pattern: str) -> tuple[str, list[Any] | None]:
    """Split a pattern into its literal prefix and the parsed rest.

    Returns (prefix, rest) where rest is [] for a pure literal, or (prefix, None) when the
    pattern cannot be analysed (flags, or syntax only RE2 knows): then only the regex decides.
    """
    try:
        parsed = sre_parse.parse(pattern)
    except Exception:
        return "", None
    if parsed.state.flags & ~_NO_EXTRA_FLAGS:
        return "", None
    items = list(parsed.data)
    # In a full match, a leading ^ / \A and a trailing $ / \z always hold.
    while items and items[0] == (sre_c.AT, sre_c.AT_BEGINNING):
        items.pop(0)
    while items and items[-1] == (sre_c.AT, sre_c.AT_END):
        items.pop()
    chars: list[str] = []
    i = 0
    while i < len(items) and items[i][0] is sre_c.LITERAL:
        chars.append(chr(items[i][1]))
        i += 1
    rest = items[i:]
    if any(op is sre_c.AT for op, _ in rest):
        return "".join(chars), None
    return "".join(chars), rest


def _any_char_repeat(tail: list[Any]) -> int | None:
    """If tail is exactly `.*`, `.+` (or lazy forms), the minimum repeat count; else None."""
    if len(tail) != 1:
        return None
    op, arg = tail[0]
    if op not in _ANY_REPEAT:
        return None
    low, high, body = arg
    if high != sre_c.MAXREPEAT or list(body) != [(sre_c.ANY, None)] or low > 1:
        return None
    return int(low)
