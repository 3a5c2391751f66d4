"""WSGI entry point for Gunicorn: ``connection_flask.wsgi:app``."""

from __future__ import annotations

import os
import sys

from connection_flask.app import create_app
from connection_flask.settings import MULTI_WORKER_MESSAGE, Settings


def gunicorn_workers() -> int | None:
    """The worker count of the ``gunicorn`` command that is loading this module, or None when
    no such command runs us (tests, another server, Gunicorn embedded in a program).

    The old command lines start Gunicorn without our config file, so its hooks cannot check.
    Gunicorn hands its configuration to nothing it imports, so this reads it again as the
    command did, with Gunicorn's own application class: the command line (a worker is a fork
    of the command, with its arguments), GUNICORN_CMD_ARGS and the config file merged.
    """
    if not _run_by_gunicorn_command():
        return None
    from gunicorn.app.wsgiapp import WSGIApplication

    cwd, path = os.getcwd(), list(sys.path)
    try:
        config = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    except (Exception, SystemExit):
        return None  # not a command line Gunicorn reads: the command that runs us is another
    finally:
        # Reading the configuration moves to its chdir and puts that on sys.path: undone.
        os.chdir(cwd)
        sys.path[:] = path
    return int(config.workers)


def _run_by_gunicorn_command() -> bool:
    """Whether this process is the ``gunicorn`` console script or ``python -m gunicorn``, or a
    worker forked from one."""
    if "gunicorn" not in sys.modules or not sys.argv:
        return False
    program = os.path.normpath(sys.argv[0])
    return os.path.basename(program) == "gunicorn" or program.endswith(
        os.path.join("gunicorn", "__main__.py")
    )


class MultipleWorkersError(RuntimeError):
    """Raised while a worker boots, so Gunicorn halts ("Worker failed to boot") instead of
    respawning workers forever."""


def refuse_multiple_workers(settings: Settings) -> None:
    """Several workers share nothing but a Redis store: with the memory store, refuse them."""
    if settings.store != "memory":
        return
    workers = gunicorn_workers()
    if workers is not None and workers > 1:
        raise MultipleWorkersError(MULTI_WORKER_MESSAGE.format(n=workers))


_settings = Settings.from_env()
refuse_multiple_workers(_settings)
app = create_app(_settings)
