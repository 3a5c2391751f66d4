"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from connection_flask.state import state
from connection_flask.store import StoreUnavailable

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@bp.get("/live")
def healthz() -> Response:
    # Liveness says only that the process answers: a registry problem must not get it killed.
    return Response("OK", mimetype="text/plain")


@bp.get("/readyz")
@bp.get("/ready")
def readyz() -> Response:
    st = state()
    if st.draining.is_set():
        return Response("draining", 503, mimetype="text/plain")
    try:
        st.registry.ping()  # Redis: one PING within the store's timeout
    except StoreUnavailable as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    return Response("OK", mimetype="text/plain")


@bp.get("/metrics")
def metrics() -> Response:
    # The pod's total across workers when several run (Metrics.exposition). content_type, not
    # mimetype: the constant already carries its charset, which Flask would add a second time.
    return Response(state().metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
