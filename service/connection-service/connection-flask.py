"""Compatibility: ``gunicorn connection-service.connection-flask:app``, the original path."""

from connection_flask.wsgi import app

__all__ = ["app"]
