"""Request bodies -> typed values, or Invalid (400) with a clear message.

The wire types are declared once, below, as msgspec Structs; a Validator gives them the length
limits of one Settings (once per app) and decodes each body straight from its bytes. A publish's
connections decode into the store's own Connection (a subclass carrying the limits), so they go
into the store as they are.

A body the decoder refuses takes a second way, which only words the refusal: parsed by orjson
(whose verdict on malformed JSON, and its message, the service has always given), keys put in the
declared order, and converted into the same types by ``msgspec.convert``, whose error is then
said in the service's words (``_translate``). In that order, the first error msgspec meets is the
first the contract's checks meet: partition, connections, then each connection's uid, uri,
data_type, connection_type, capacity. The same way serves the contract's one quirk, a connection
without uid or uri, which is skipped and the rest stored.

Keys the contract does not name are refused by the decoder (``forbid_unknown_fields``) and
dropped by the second way: msgspec skips such values without checking them, so ``1e999`` or
invalid UTF-8 there would pass the decoder although orjson refuses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast
from urllib.parse import parse_qs

import msgspec
import orjson
from msgspec import Meta, Struct

from connection_flask.errors import Invalid
from connection_flask.matching import Matcher, PatternError, compile_matcher
from connection_flask.settings import Settings
from connection_flask.store import Connection

# ----------------------------------------------------------------------------- the wire types


class PublishBody(Struct):
    partition: str
    connections: list[Connection]


class LookupBody(Struct):
    uid_regex: str
    data_type: str


class RetractItem(Struct):
    connection_id: str
    data_type: str | None = None


class RetractBody(Struct):
    partition: str
    connections: list[RetractItem]


class PartitionBody(Struct):
    partition: str


INT64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# Lookups name the partition in the path, /getconnection/<partition>, where a '/' would split it:
# a partition that could be published but never looked up.
NO_SLASH = "^[^/]*$"
S = TypeVar("S", bound=Struct)


def _limited(base: type[S], **types: Any) -> type[S]:
    """``base`` with the named fields' types replaced (by the same type with its limits),
    refusing keys it does not declare."""
    fields = [
        (f.name, types.get(f.name, f.type))
        if f.required
        else (f.name, types.get(f.name, f.type), f.default)
        for f in msgspec.structs.fields(base)
    ]
    made = msgspec.defstruct(base.__name__, fields, bases=(base,), forbid_unknown_fields=True)
    return cast(type[S], made)


@dataclass(frozen=True, slots=True)
class Lookup:
    matcher: Matcher
    data_type: str


@dataclass(frozen=True, slots=True)
class Retract:
    partition: str
    uids: list[str]


class Validator:
    """The wire types with the limits of one Settings, and a decoder for each."""

    def __init__(self, settings: Settings) -> None:
        s = settings

        def text(limit: int) -> Any:
            return Annotated[str, Meta(max_length=limit)]

        def listed(item: type[Struct]) -> Any:
            return Annotated[list[item], Meta(max_length=s.max_connections_per_publish)]  # type: ignore[valid-type]

        partition = Annotated[
            str, Meta(min_length=1, max_length=s.max_partition_length, pattern=NO_SLASH)
        ]
        connection = _limited(
            Connection,
            uid=text(s.max_uid_length),
            uri=text(s.max_uri_length),
            data_type=text(s.max_data_type_length),
            connection_type=INT64,
            capacity=INT64,
        )
        item = _limited(RetractItem, connection_id=text(s.max_uid_length))
        publish = _limited(PublishBody, partition=partition, connections=listed(connection))
        self._publish = _Wire(publish, connection)
        self._retract = _Wire(
            _limited(RetractBody, partition=partition, connections=listed(item)), item
        )
        self._lookup = _Wire(_limited(LookupBody))
        self.max_regex_length = s.max_regex_length
        self._partition = _Wire(_limited(PartitionBody, partition=partition))

    def publish(self, body: bytes) -> tuple[PublishBody, int]:
        """The publish, and how many connections it skipped for want of uid or uri."""
        try:
            return self._publish.decoder.decode(body), 0
        except _REFUSED:
            doc = json_object(body)
        conns = doc.get("connections")
        if type(conns) is not list:
            return self._publish.convert(doc), 0
        # Each connection to skip goes through as a placeholder that passes, so that the count
        # limit still counts it, and is dropped after.
        skip = {
            i for i, c in enumerate(conns) if type(c) is dict and not ("uid" in c and "uri" in c)
        }
        doc["connections"] = [_PLACEHOLDER if i in skip else c for i, c in enumerate(conns)]
        result = self._publish.convert(doc)
        result.connections = [c for i, c in enumerate(result.connections) if i not in skip]
        return result, len(skip)

    def lookup(self, body: bytes) -> Lookup:
        req = self._lookup.decode(body)
        # Checked here, not declared: the contract checks the pattern's length after both keys.
        if len(req.uid_regex) > self.max_regex_length:
            raise Invalid(
                f"uid_regex is {len(req.uid_regex)} characters, longer than "
                f"CONNECTION_FLASK_MAX_REGEX_LENGTH ({self.max_regex_length})",
                "too_long",
            )
        try:
            matcher = compile_matcher(req.uid_regex)
        except PatternError as exc:
            raise Invalid(str(exc), "invalid_regex") from None
        return Lookup(matcher, req.data_type)

    def retract(self, body: bytes) -> Retract:
        req = self._retract.decode(body)
        return Retract(req.partition, [c.connection_id for c in req.connections])

    def retract_partition(self, body: bytes) -> str:
        """The partition named by a form field (older clients) or a JSON body (newer ones)."""
        if body[:1] not in (b"{", b" ", b"\n", b"\r", b"\t"):
            fields = parse_qs(body.decode("utf-8", "replace"))
            if "partition" in fields:
                return self._partition.convert({"partition": fields["partition"][0]}).partition
        if not body.strip():
            raise Invalid("no partition named: send form field 'partition' or {\"partition\": ...}")
        return self._partition.decode(body).partition


_REFUSED = (msgspec.DecodeError, RecursionError)  # ValidationError is a DecodeError
_PLACEHOLDER = {"uid": "", "uri": "", "data_type": "", "connection_type": 0}


class _Wire(Generic[S]):
    """One request type: its decoder, and the second way for the bodies the decoder refuses."""

    def __init__(self, kind: type[S], item: type[Struct] | None = None) -> None:
        self.kind = kind
        self.decoder = msgspec.json.Decoder(kind)
        self.fields = _Fields(kind)
        self.item = None if item is None else _Fields(item)  # of the "connections" array

    def decode(self, body: bytes) -> S:
        try:
            return self.decoder.decode(body)
        except _REFUSED:
            return self.convert(json_object(body))

    def convert(self, doc: dict[str, Any]) -> S:
        doc = self.fields.ordered(doc)
        items = doc.get("connections")
        if self.item is not None and type(items) is list:
            doc["connections"] = [self.item.ordered(c) if type(c) is dict else c for c in items]
        try:
            return msgspec.convert(doc, self.kind)
        except msgspec.ValidationError as exc:
            raise _translate(str(exc), doc) from None


class _Fields:
    def __init__(self, kind: type[Struct]) -> None:
        self.names = kind.__struct_fields__
        self.required = {f.name for f in msgspec.structs.fields(kind) if f.required}

    def ordered(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc``'s declared keys in declared order, up to the first required one missing:
        msgspec reports a missing key only after checking the keys present."""
        out = {}
        for name in self.names:
            if name in doc:
                out[name] = doc[name]
            elif name in self.required:
                break
        return out


def json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise Invalid("request body is empty; expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(value, dict):
        raise Invalid(f"request body must be a JSON object, not {_KIND[_json_kind(value)]}")
    return value


# ----------------------------------------------------------------------------- error messages

_ERROR = re.compile(r"(?P<problem>.*?)(?: - at `\$(?P<path>.*)`)?", re.S)
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")
_KIND = {
    "object": "an object",
    "array": "an array",
    "str": "a string",
    "bool": "a boolean",
    "int": "a number",
    "float": "a number",
    "null": "null",
}
_MUST_BE = {"str": "a string", "array": "an array", "int": "an integer", "object": "an object"}
_LENGTH_SETTING = {
    "partition": "MAX_PARTITION_LENGTH",
    "uid": "MAX_UID_LENGTH",
    "connection_id": "MAX_UID_LENGTH",
    "uri": "MAX_URI_LENGTH",
    "data_type": "MAX_DATA_TYPE_LENGTH",
}


def _translate(error: str, doc: dict[str, Any]) -> Invalid:
    """msgspec's error (``Expected `str` of length <= 5 - at `$.connections[3].uid```) in the
    words the service has always used, reading what it needs of the value from ``doc``."""
    m = _ERROR.fullmatch(error)
    assert m is not None  # the pattern matches any text
    problem, path = m["problem"], m["path"] or ""
    label = path.lstrip(".")
    steps = _STEP.findall(path)
    value: Any = doc
    for key, index in steps:
        value = value[key] if key else value[int(index)]
    field = steps[-1][0] if steps else ""
    if got := re.fullmatch(r"Object missing required field `(\w+)`", problem):
        return Invalid(f"missing required key '{label + '.' if label else ''}{got[1]}'")
    if got := re.fullmatch(r"Expected `(.+)`, got `(\w+)`", problem):
        expected, kind = got[1], _KIND.get(got[2], got[2])
        if expected in ("object", "str | null"):  # the wording of the connection checks
            return Invalid(f"{label} must be {_MUST_BE.get(expected, 'a string')}, not {kind}")
        return Invalid(f"'{label}' must be {_MUST_BE.get(expected, expected)}, not {kind}")
    if got := re.fullmatch(r"Expected `array` of length <= (\d+)", problem):
        return Invalid(
            f"{len(value)} connections in one request, more than "
            f"CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH ({got[1]})",
            "too_many_connections",
        )
    if got := re.fullmatch(r"Expected `str` of length <= (\d+)", problem):
        return Invalid(
            f"'{label}' is {len(value)} characters, longer than "
            f"CONNECTION_FLASK_{_LENGTH_SETTING[field]} ({got[1]})",
            "too_long",
        )
    if problem.startswith("Expected `str` of length >="):
        return Invalid(f"'{label}' must not be empty")
    if problem.startswith("Expected `str` matching regex"):
        return Invalid(
            f"'{label}' must not contain '/' (it could not be looked up at "
            f"/getconnection/<partition>): {value!r}"
        )
    if problem.startswith("Expected `int` "):
        return Invalid(f"'{label}' is out of the 64-bit integer range")
    return Invalid(f"{problem} at '{label}'" if label else problem)


def _json_kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float"}
    return names.get(type(value), "null")
