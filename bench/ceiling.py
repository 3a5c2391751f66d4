"""The ceiling the service is measured against: the least a Flask app, and the least any WSGI
app, can do per request under the same Gunicorn command and settings.

    gunicorn --config python:connection_flask.gunicorn_conf --pythonpath bench ceiling:flask_app
    gunicorn --config python:connection_flask.gunicorn_conf --pythonpath bench ceiling:wsgi_app

Neither reads the request body: they answer ``OK`` to a POST the way the old benchmark's
"trivial Flask route" did, so everything the service does beyond that is its own cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

flask_app = Flask(__name__)


@flask_app.post("/")
def ok() -> str:
    return "OK"


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"OK"]
