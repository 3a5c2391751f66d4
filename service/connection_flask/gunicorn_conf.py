"""Gunicorn configuration, every value from the environment through Settings.

Used as ``gunicorn --config python:connection_flask.gunicorn_conf connection_flask.wsgi:app``
(the container, ``make run`` and the ``connection-flask`` command all start it that way).
"""

from __future__ import annotations

import os
from typing import Any

from connection_flask.settings import Settings
from connection_flask.wsgi import MULTI_WORKER_MESSAGE

_settings = Settings.from_env()

bind = [_settings.bind]
workers = _settings.workers
worker_class = _settings.worker_class
threads = _settings.threads
worker_connections = _settings.worker_connections
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive
accesslog = _settings.access_log or None
errorlog = "-"
loglevel = "debug" if _settings.debug_level >= 2 else "info"
# The heartbeat file is touched constantly: keep it off disk (tmpfs or a k8s emptyDir).
worker_tmp_dir = _settings.worker_tmp_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
# Gunicorn's control socket lives at one path per user: several servers would fight over it,
# and a read-only container has nowhere to put it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    if server.cfg.workers > 1:
        raise SystemExit(MULTI_WORKER_MESSAGE.format(n=server.cfg.workers))
