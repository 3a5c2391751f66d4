"""The Redis store's Lua scripts (one per operation, each with the shared helpers before it)
and the index keys they range over.

Every write is one script, so Redis runs it whole and alone: a publish of N connections is all
visible or none, and limits are checked against what the store holds at that moment. Key layout
and clock are described in redis_common.lua.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

NAMES = ("publish", "lookup", "retract", "sweep", "read", "page", "stats")


def sources() -> dict[str, str]:
    """Each script's full source, helpers first."""
    files = resources.files(__package__)
    common = (files / "redis_common.lua").read_text()
    return {name: common + (files / f"redis_{name}.lua").read_text() for name in NAMES}


class Scripts:
    """The scripts registered with one client (``register_script``: EVALSHA, loading the
    script again when the server has forgotten it, e.g. after a restart)."""

    def __init__(self, client: Any, texts: dict[str, str]) -> None:
        self.publish = client.register_script(texts["publish"])
        self.lookup = client.register_script(texts["lookup"])
        self.retract = client.register_script(texts["retract"])
        self.sweep = client.register_script(texts["sweep"])
        self.read = client.register_script(texts["read"])
        self.page = client.register_script(texts["page"])
        self.stats = client.register_script(texts["stats"])


def member_head(data_type: str) -> bytes:
    """What every index member of ``data_type`` starts with, the uid following it: its length
    first, so no data_type's members run into another's (redis_common.lua ``member``)."""
    encoded = data_type.encode()
    return b"%d:%s" % (len(encoded), encoded)


# No UTF-8 text holds this byte, so it closes the range of every uid with a given prefix.
AFTER_ALL = b"\xff"


def lookup_range(head: bytes, literal: str | None, prefix: str) -> tuple[bytes, bytes]:
    """BYLEX bounds of the index members of one uid (``literal``) or of every uid starting
    with ``prefix``."""
    if literal is not None:
        exact = b"[" + head + literal.encode()
        return exact, exact
    start = head + prefix.encode()
    return b"[" + start, b"(" + start + AFTER_ALL
