"""Who may call what: every endpoint is open, a read or a write, decided here and nowhere else.

With CONNECTION_FLASK_WRITE_TOKEN set, writes need ``Authorization: Bearer <write token>``;
with CONNECTION_FLASK_READ_TOKEN set, reads need the read or the write token. Probes and
/metrics stay open, so orchestrators and Prometheus need no secret. An endpoint not listed here
counts as a read: a new page is guarded as soon as a read token is set.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, request

from connection_flask.errors import Unauthorized
from connection_flask.settings import Settings

# The OpenAPI document is open like the probes: it says how to call, not what is registered.
OPEN = frozenset({"ops.healthz", "ops.readyz", "ops.metrics", "openapi.openapi", "static"})
WRITES = frozenset(
    {
        "api.publish",
        "api.retract",
        "api.retract_partition",
        "admin.reset_stats",
        "admin.reset_service",
        "admin.purge",
    }
)
READS = frozenset(
    {
        "api.getconnection",
        "admin.dump",
        "admin.stats",
        "admin_api.api_partitions",
        "admin_api.api_connections",
    }
)

WRITE_REFUSED = (
    "this endpoint needs 'Authorization: Bearer <token>' with the server's write token "
    "(CONNECTION_FLASK_WRITE_TOKEN is set)"
)
READ_REFUSED = (
    "this endpoint needs 'Authorization: Bearer <token>' with the server's read or write token "
    "(CONNECTION_FLASK_READ_TOKEN is set)"
)


def install(app: Flask, settings: Settings) -> None:
    """Check tokens before every request, if any token is set; with none (the default) the
    check costs nothing, as it is not installed."""
    if not (settings.write_token or settings.read_token):
        return
    write = _digest(settings.write_token) if settings.write_token else None
    read = _digest(settings.read_token) if settings.read_token else None

    @app.before_request
    def check_token() -> None:
        endpoint = request.endpoint
        # No endpoint: the route or method is unknown, and the answer (404, 405) gives nothing
        # away. OPTIONS is answered by Flask without running the view.
        if endpoint is None or endpoint in OPEN or request.method == "OPTIONS":
            return
        given = _bearer(request.headers.get("Authorization"))
        # Both comparisons always run, so the time taken does not say which token was close.
        write_ok = write is not None and hmac.compare_digest(given, write)
        read_ok = read is not None and hmac.compare_digest(given, read)
        if endpoint in WRITES:
            if write is not None and not write_ok:
                raise Unauthorized(WRITE_REFUSED)
        elif read is not None and not (read_ok or write_ok):
            raise Unauthorized(READ_REFUSED)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _bearer(authorization: str | None) -> bytes:
    """The digest of a Bearer credential; of nothing for another scheme. Digests of equal
    length, compared in constant time: neither how much of a guess was right nor the token's
    length shows in the time taken. The token itself is never logged."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    return _digest(given.strip() if scheme.lower() == "bearer" else "")
