"""WSGI entry point for Gunicorn: ``connection_flask.wsgi:app``."""

from __future__ import annotations

import sys

from connection_flask.app import create_app
from connection_flask.settings import MULTI_WORKER_MESSAGE


def gunicorn_workers() -> int | None:
    """The worker count of the Gunicorn that is loading this module, or None outside Gunicorn.

    The old command lines start Gunicorn without our config file, so its hooks cannot check;
    the only reliable view of the final configuration (command line, GUNICORN_CMD_ARGS and
    config file merged) is the worker or application object that is importing us.
    """
    if "gunicorn" not in sys.modules:
        return None
    from gunicorn.app.base import BaseApplication
    from gunicorn.workers.base import Worker

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Worker | BaseApplication):
            return int(owner.cfg.workers)
        frame = frame.f_back  # type: ignore[assignment]
    return None


class MultipleWorkersError(RuntimeError):
    """Raised while a worker boots, so Gunicorn halts ("Worker failed to boot") instead of
    respawning workers forever."""


def refuse_multiple_workers() -> None:
    workers = gunicorn_workers()
    if workers is not None and workers > 1:
        raise MultipleWorkersError(MULTI_WORKER_MESSAGE.format(n=workers))


refuse_multiple_workers()
app = create_app()
