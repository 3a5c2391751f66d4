"""Request bodies -> typed values, or an Invalid error carrying a clear 4xx message.

Knows JSON and the contract's shapes; knows nothing of Flask or of the registry's internals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from connection_flask.errors import Invalid
from connection_flask.matching import Matcher, PatternError, compile_matcher
from connection_flask.registry import Connection
from connection_flask.settings import Settings

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Publish:
    partition: str
    connections: tuple[Connection, ...]
    skipped: int


@dataclass(frozen=True, slots=True)
class Lookup:
    matcher: Matcher
    data_type: str


@dataclass(frozen=True, slots=True)
class Retract:
    partition: str
    uids: list[str]


def json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise Invalid("request body is empty; expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(value, dict):
        raise Invalid(f"request body must be a JSON object, not {_kind(value)}")
    return value


# Publishes already validated, by request body. A DAQ application republishes the same
# connections every 1-2 s as its keep-alive, so nearly every publish body is one seen seconds
# ago, and parsing and checking the same bytes under the same settings gives the same answer.
# Bounded by the bytes of the bodies kept (the parsed values cost about as much again); the
# oldest is dropped first. Only bodies that validated are kept: errors are always worked out.
PUBLISH_CACHE_BYTES = 4 * 1024 * 1024
PUBLISH_CACHE_MAX_BODY = 64 * 1024


class _PublishCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0  # bytes of the bodies kept
        self._items: dict[bytes, tuple[Settings, Publish]] = {}
        self._lock = threading.Lock()  # for writes; a read is one atomic dict.get

    def get(self, body: bytes, settings: Settings) -> Publish | None:
        hit = self._items.get(body)
        # Settings are compared by identity: an app's Settings object is made once, and two
        # apps in one process (tests) never see each other's limits.
        return hit[1] if hit is not None and hit[0] is settings else None

    def put(self, body: bytes, settings: Settings, value: Publish) -> None:
        if len(body) > PUBLISH_CACHE_MAX_BODY:
            return
        with self._lock:
            old = self._items.pop(body, None)
            if old is not None:
                self.held -= len(body)
            while self._items and self.held + len(body) > self.capacity:
                oldest = next(iter(self._items))
                del self._items[oldest]
                self.held -= len(oldest)
            self._items[body] = (settings, value)
            self.held += len(body)

    def __len__(self) -> int:
        return len(self._items)


publish_cache = _PublishCache(PUBLISH_CACHE_BYTES)


def publish(body: bytes, settings: Settings) -> Publish:
    cached = publish_cache.get(body, settings)
    if cached is not None:
        return cached
    result = _publish(body, settings)
    publish_cache.put(body, settings, result)
    return result


def _publish(body: bytes, settings: Settings) -> Publish:
    doc = json_object(body)
    partition = _partition(doc, settings)
    conns = _required(doc, "connections", list, "an array")
    if len(conns) > settings.max_connections_per_publish:
        raise _too_many(len(conns), settings)
    out: list[Connection] = []
    max_uid, max_uri = settings.max_uid_length, settings.max_uri_length
    max_data_type = settings.max_data_type_length
    for i, c in enumerate(conns):
        # Fast path for the well-formed connection every DAQ client sends (orjson yields exact
        # str/int/dict types; bool is not int here). Anything else takes the checks below, which
        # decide skip or error and word the message exactly as before.
        if type(c) is dict:
            uid, uri, data_type = c.get("uid"), c.get("uri"), c.get("data_type")
            connection_type, capacity = c.get("connection_type"), c.get("capacity", 0)
            if (
                type(uid) is str
                and type(uri) is str
                and type(data_type) is str
                and type(connection_type) is int
                and type(capacity) is int
                and len(uid) <= max_uid
                and len(uri) <= max_uri
                and len(data_type) <= max_data_type
                and INT64_MIN <= connection_type <= INT64_MAX
                and INT64_MIN <= capacity <= INT64_MAX
            ):
                out.append(Connection(uid, uri, data_type, connection_type, capacity))
                continue
        where = f"connections[{i}]"
        if not isinstance(c, dict):
            raise Invalid(f"{where} must be an object, not {_kind(c)}")
        if "uid" not in c or "uri" not in c:
            continue  # the contract: such connections are skipped, the rest stored
        out.append(
            Connection(
                uid=_text(c, "uid", settings.max_uid_length, "MAX_UID_LENGTH", where),
                uri=_text(c, "uri", settings.max_uri_length, "MAX_URI_LENGTH", where),
                data_type=_text(
                    c, "data_type", settings.max_data_type_length, "MAX_DATA_TYPE_LENGTH", where
                ),
                connection_type=_int(c, "connection_type", where, required=True),
                capacity=_int(c, "capacity", where, required=False),
            )
        )
    return Publish(partition, tuple(out), len(conns) - len(out))


def lookup(body: bytes, settings: Settings) -> Lookup:
    doc = json_object(body)
    pattern = _required(doc, "uid_regex", str, "a string")
    data_type = _required(doc, "data_type", str, "a string")
    if len(pattern) > settings.max_regex_length:
        raise Invalid(
            f"uid_regex is {len(pattern)} characters, longer than "
            f"CONNECTION_FLASK_MAX_REGEX_LENGTH ({settings.max_regex_length})",
            "too_long",
        )
    try:
        matcher = compile_matcher(pattern)
    except PatternError as exc:
        raise Invalid(str(exc), "invalid_regex") from None
    return Lookup(matcher, data_type)


def retract(body: bytes, settings: Settings) -> Retract:
    doc = json_object(body)
    partition = _partition(doc, settings)
    conns = _required(doc, "connections", list, "an array")
    if len(conns) > settings.max_connections_per_publish:
        raise _too_many(len(conns), settings)
    uids = []
    for i, c in enumerate(conns):
        where = f"connections[{i}]"
        if not isinstance(c, dict):
            raise Invalid(f"{where} must be an object, not {_kind(c)}")
        uid = _required(c, "connection_id", str, "a string", where)
        _check_length(f"{where}.connection_id", uid, settings.max_uid_length, "MAX_UID_LENGTH")
        uids.append(uid)
        if c.get("data_type") is not None and not isinstance(c["data_type"], str):
            raise Invalid(f"{where}.data_type must be a string, not {_kind(c['data_type'])}")
    return Retract(partition, uids)


def retract_partition(body: bytes, form: dict[str, str] | None, settings: Settings) -> str:
    """The partition named by a form field (older clients) or a JSON body (newer ones)."""
    if form is not None and "partition" in form:
        return _partition(form, settings)
    if body[:1] not in (b"{", b" ", b"\n", b"\r", b"\t"):
        fields = parse_qs(body.decode("utf-8", "replace"))
        if "partition" in fields:
            return _partition({"partition": fields["partition"][0]}, settings)
    if not body.strip():
        raise Invalid("no partition named: send form field 'partition' or {\"partition\": ...}")
    return _partition(json_object(body), settings)


# ----------------------------------------------------------------------------- helpers


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _required(doc: dict[str, Any], key: str, kind: type, name: str, where: str = "") -> Any:
    label = f"{where}.{key}" if where else key
    if key not in doc:
        raise Invalid(f"missing required key '{label}'")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise Invalid(f"'{label}' must be {name}, not {_kind(value)}")
    return value


def _partition(doc: dict[str, Any], settings: Settings) -> str:
    value = _required(doc, "partition", str, "a string")
    if not value:
        raise Invalid("'partition' must not be empty")
    _check_length("partition", value, settings.max_partition_length, "MAX_PARTITION_LENGTH")
    if "/" in value:
        # Lookups name the partition in the path, /getconnection/<partition>, where a '/'
        # would split it: a partition that could be published but never looked up.
        raise Invalid(
            f"'partition' must not contain '/' (it could not be looked up at "
            f"/getconnection/<partition>): {value!r}"
        )
    return str(value)


def _text(doc: dict[str, Any], key: str, limit: int, setting: str, where: str) -> str:
    value = _required(doc, key, str, "a string", where)
    _check_length(f"{where}.{key}", value, limit, setting)
    return str(value)


def _check_length(label: str, value: str, limit: int, setting: str) -> None:
    if len(value) > limit:
        raise Invalid(
            f"'{label}' is {len(value)} characters, "
            f"longer than CONNECTION_FLASK_{setting} ({limit})",
            "too_long",
        )


def _int(doc: dict[str, Any], key: str, where: str, *, required: bool) -> int:
    if key not in doc and not required:
        return 0
    value = _required(doc, key, int, "an integer", where)
    if not INT64_MIN <= value <= INT64_MAX:
        raise Invalid(f"'{where}.{key}' is out of the 64-bit integer range")
    return int(value)


def _too_many(count: int, settings: Settings) -> Invalid:
    return Invalid(
        f"{count} connections in one request, more than "
        f"CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH ({settings.max_connections_per_publish})",
        "too_many_connections",
    )
