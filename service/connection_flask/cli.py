"""``connection-flask``: start Gunicorn with the service's configuration."""

from __future__ import annotations

import os
import sys

GUNICORN_ARGS = ["--config", "python:connection_flask.gunicorn_conf", "connection_flask.wsgi:app"]


def main() -> None:
    """Replace this process with Gunicorn, so signals reach it directly. Extra arguments are
    passed on to Gunicorn (they override the environment, e.g. ``-b 127.0.0.1:5001``)."""
    argv = [sys.executable, "-m", "gunicorn", *sys.argv[1:], *GUNICORN_ARGS]
    os.execv(sys.executable, argv)
