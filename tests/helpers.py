"""Helpers shared by the test modules (conftest.py holds only fixtures)."""

from __future__ import annotations

from typing import Any


class FakeClock:
    """A monotonic clock the test moves by hand, so TTL tests never sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def conn(
    uid: str, uri: str | None = None, data_type: str = "TPSet", **extra: Any
) -> dict[str, Any]:
    """A connection object as DAQ clients publish it."""
    return {
        "uid": uid,
        "uri": uri or f"tcp://192.168.1.100:{1000 + len(uid)}",
        "data_type": data_type,
        "connection_type": 0,
        **extra,
    }


# The old README's example, verbatim (publish.json for partition ccTest).
README_PUBLISH = {
    "connections": [
        {
            "connection_type": 0,
            "data_type": "TPSet",
            "uid": "DRO-000-tp_to_trigger",
            "uri": "tcp://192.168.1.100:1234",
        },
        {
            "connection_type": 0,
            "data_type": "TPSet",
            "uid": "DRO-001-tp_to_trigger",
            "uri": "tcp://192.168.1.100:1235",
        },
    ],
    "partition": "ccTest",
}
README_LOOKUP = {"uid_regex": "DRO.*", "data_type": "TPSet"}
README_LOOKUP_ANSWER = (
    b'[{"uid":"DRO-000-tp_to_trigger","uri":"tcp://192.168.1.100:1234","connection_type":0,'
    b'"data_type":"TPSet","capacity":0},{"uid":"DRO-001-tp_to_trigger",'
    b'"uri":"tcp://192.168.1.100:1235","connection_type":0,"data_type":"TPSet","capacity":0}]'
)
