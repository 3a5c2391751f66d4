"""The DAQ endpoints: parse with validation, act on the registry, answer as the contract says.
Who may call them is auth.py's to decide; refusals are errors.py's types, answered by app.py."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from flask import Blueprint, Response, request

from connection_flask import body as bodies
from connection_flask.state import State, state

log = logging.getLogger("connection_flask")
bp = Blueprint("api", __name__)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, mimetype="application/json")


def body(st: State) -> bytes:
    """The request body, whole; see body.read for the limits and deadline."""
    settings = st.settings
    data = bodies.read(request.environ, settings.max_body_bytes, settings.body_timeout)
    if settings.debug_level >= 3:
        log.debug("%s %s body=%r", request.method, request.path, data)
    return data


@bp.post("/publish")
def publish() -> Response:
    st = state()
    start = time.perf_counter()
    req, skipped = st.validator.publish(body(st))
    result = st.registry.publish(req.partition, req.connections)
    elapsed = time.perf_counter() - start
    st.registry.record_call("publish", elapsed)
    st.metrics.published.inc(result.stored)
    log.info(
        "publish partition=%s connections=%d took %.0f us",
        req.partition,
        result.stored,
        elapsed * 1e6,
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "published in %s from %s: %s (skipped %d without uid/uri)",
            req.partition,
            request.remote_addr,
            ", ".join(f"{c.uid}={c.uri} [{c.data_type}]" for c in req.connections),
            skipped,
        )
    return Response("OK")


@bp.route("/getconnection/<partition>", methods=["GET", "POST"])
def getconnection(partition: str) -> Response:
    st = state()
    start = time.perf_counter()
    req = st.validator.lookup(body(st))
    found = st.registry.lookup(partition, req.matcher, req.data_type)
    elapsed = time.perf_counter() - start
    st.registry.record_call("lookup", elapsed)
    st.metrics.observe_lookup(None if found is None else len(found))
    log.info(
        "lookup partition=%s uid_regex=%s found=%s took %.0f us",
        partition,
        req.matcher.pattern,
        "unknown partition" if found is None else len(found),
        elapsed * 1e6,
    )
    if found is None:
        return json_response({"error": f"partition {partition!r} not found"}, 404)
    return Response(json_array(found), content_type="application/json")


def json_array(items: list[bytes]) -> bytes:
    """``[a,b,...]`` from encoded items, copying the (maybe megabytes of) bytes once: the
    brackets go onto the first and last items instead of around the joined result."""
    if not items:
        return b"[]"
    items[0] = b"[" + items[0]
    items[-1] += b"]"
    return b",".join(items)


@bp.post("/retract")
def retract() -> Response:
    st = state()
    req = st.validator.retract(body(st))
    result = st.registry.retract(req.partition, req.uids)
    log.info("retract partition=%s uids=%d", req.partition, len(req.uids))
    if not result.partition_found:
        return json_response({"error": f"partition {req.partition!r} not found"}, 404)
    if result.missing:
        missing = ", ".join(result.missing[:10]) + (" ..." if len(result.missing) > 10 else "")
        return json_response(
            {"error": f"{len(result.missing)} connection_id(s) not found: {missing}"}, 404
        )
    return Response("OK")


@bp.post("/retract-partition")
def retract_partition() -> Response:
    st = state()
    # A form field (older clients) is parsed from the body like JSON, under the same limits.
    partition = st.validator.retract_partition(body(st))
    log.info("retract-partition partition=%s", partition)
    if not st.registry.retract_partition(partition):
        return json_response({"error": f"partition {partition!r} not found"}, 404)
    return Response("OK")
