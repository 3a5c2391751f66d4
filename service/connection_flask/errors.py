"""The refusals a request can get: each error type is answered with one status code, as
``{"error": message}``, and counted in connection_flask_rejected_requests_total{reason}.

Raised by the web layer: ``Rejected`` and its subclasses, whose class fixes the status. Raised
by a store, which knows nothing of HTTP: the types in ``STORE_ERRORS``, each with its status and
reason. app.py registers one Flask error handler per type. A new refusal is a subclass here (or
a row of STORE_ERRORS) and, for its counter series, a name in REASONS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from connection_flask.store import LimitExceeded, StoreUnavailable

# Bounded label values for connection_flask_rejected_requests_total, all pre-created at 0.
REASONS = (
    "invalid_json",
    "invalid_request",
    "invalid_regex",
    "body_too_large",
    "body_timeout",
    "bad_framing",
    "too_long",
    "too_many_connections",
    "registry_full",
    "unauthorized",
    "store_unavailable",
    "too_many_watches",
)


class Rejected(Exception):
    """The request cannot be served as sent; ``reason`` is one of REASONS. A subclass names its
    status and its usual reason: ``class Gone(Rejected, status=410, reason="gone")``, and may
    name headers every answer of its kind carries (``usual_headers``); ``headers`` are this
    answer's."""

    status: ClassVar[int]
    usual_reason: ClassVar[str]
    usual_headers: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, *, status: int, reason: str) -> None:
        cls.status, cls.usual_reason = status, reason

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.usual_reason
        self.headers = dict(self.usual_headers)


class Invalid(Rejected, status=400, reason="invalid_request"):
    """The body, a query parameter or the framing is wrong; ``reason`` says how."""


class Unauthorized(Rejected, status=401, reason="unauthorized"):
    """The endpoint needs a token the request did not carry (auth.py decides which)."""

    usual_headers: ClassVar[Mapping[str, str]] = {
        "WWW-Authenticate": 'Bearer realm="connection-flask"'
    }


class BodyTimeout(Rejected, status=408, reason="body_timeout"):
    """The body did not arrive within CONNECTION_FLASK_BODY_TIMEOUT."""


class BodyTooLarge(Rejected, status=413, reason="body_too_large"):
    """The body is past CONNECTION_FLASK_MAX_BODY_BYTES."""


class TooManyWatches(Rejected, status=429, reason="too_many_watches"):
    """CONNECTION_FLASK_MAX_WATCHES watches already wait, or this worker cannot hold one
    (watches.py); the client may ask again after Retry-After seconds."""

    usual_headers: ClassVar[Mapping[str, str]] = {"Retry-After": "1"}


# A store's own exceptions: (status, reason) each is answered with; the message is str(exc).
STORE_ERRORS: Mapping[type[Exception], tuple[int, str]] = {
    LimitExceeded: (429, "registry_full"),
    # Redis down or too slow: not the request's fault, and the next one may be served.
    StoreUnavailable: (503, "store_unavailable"),
}
