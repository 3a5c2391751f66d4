"""create_app(settings) factory: wires settings, registry, metrics, logging and blueprints."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from connection_flask import admin, admin_api, api, auth, logs, ops
from connection_flask.environ_keys import ENDPOINT_KEY
from connection_flask.errors import STORE_ERRORS, Rejected
from connection_flask.metrics import Metrics
from connection_flask.openapi import bp as openapi_bp
from connection_flask.registry import Clock, make_store
from connection_flask.settings import Settings
from connection_flask.state import EXTENSION, State, state
from connection_flask.validation import Validator

log = logging.getLogger("connection_flask")


def create_app(settings: Settings | None = None, *, clock: Clock = time.monotonic) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    registry = make_store(
        settings,
        clock=clock,
        # The metrics are built from the registry below: the hook looks them up when it fires.
        on_expired=lambda n: app.extensions[EXTENSION].metrics.expired.inc(n),  # noqa: PLW0108
    )
    app.extensions[EXTENSION] = State(
        settings, registry, Metrics(registry.counts), Validator(settings)
    )
    logs.configure(settings)
    auth.install(app, settings)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(openapi_bp)
    app.wsgi_app = _Timed(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_observe)
    app.register_error_handler(Rejected, _rejected)
    for error, (status, reason) in STORE_ERRORS.items():
        app.register_error_handler(error, _store_error(status, reason))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


# Where a request's start time travels from the WSGI wrapper to the after_request hook: a
# WSGI middleware is cheaper than a before_request hook writing to flask.g, and it also counts
# the time Flask spends before the first hook.
_START = "connection_flask.start"


class _Timed:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ[_START] = time.perf_counter()
        return self.wsgi_app(environ, start_response)


def _observe(response: Response) -> Response:
    req = request._get_current_object()  # type: ignore[attr-defined]
    endpoint = req.environ.get(ENDPOINT_KEY) or (req.endpoint or "other").rpartition(".")[2]
    elapsed = time.perf_counter() - req.environ.get(_START, time.perf_counter())
    state().metrics.observe_request(endpoint, req.method, response.status_code, elapsed)
    return response


def error_response(message: str, status: int) -> Response:
    return api.json_response({"error": message}, status)


def _rejected(exc: Rejected) -> Response:
    response = _refuse(exc.message, exc.status, exc.reason)
    response.headers.update(exc.headers)
    return response


def _store_error(status: int, reason: str) -> Callable[[Exception], Response]:
    def handler(exc: Exception) -> Response:
        return _refuse(str(exc), status, reason)

    return handler


def _refuse(message: str, status: int, reason: str) -> Response:
    state().metrics.rejected.labels(reason).inc()
    log.info("rejected %s %s: %s", request.method, request.path, message)
    return error_response(message, status)


def _http_error(exc: HTTPException) -> Response:
    response = error_response(exc.description or exc.name, exc.code or 500)
    for key, value in exc.get_headers():
        if key.lower() in ("allow", "www-authenticate"):
            response.headers[key] = value
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return error_response("internal error; the server log has the details", 500)
