"""Gunicorn picks this file up when started from the repository root; the settings live in the
package so an installed image uses the very same file (python:connection_flask.gunicorn_conf)."""

from connection_flask.gunicorn_conf import *  # noqa: F403
