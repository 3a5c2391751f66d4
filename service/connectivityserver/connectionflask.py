"""Compatibility: ``gunicorn connectivityserver.connectionflask:app`` (the newer module path)."""

from connection_flask.wsgi import app

__all__ = ["app"]
