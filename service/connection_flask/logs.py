"""The service's log lines: levels from CONNECTION_FLASK_DEBUG, written into Gunicorn's error log.

Plain logging, each line written as it is logged. Lines used to be written in batches by a
handler of our own, because under gthread each write handed the GIL to the waiting threads; under
gevent (the default worker) requests share one OS thread and that reason is gone. What is left is
the write itself. Measured in-process (a 20-connection publish, Gunicorn's format, this VM), the
timing line of CONNECTION_FLASK_DEBUG=1 costs about 10 us of CPU into a file, as batched, and
about 20 us into a pipe, whose reader each write wakes (batched: 10 us). QueueHandler and
QueueListener would not save it: the listener writes line by line too, and under gevent its
thread runs on the same OS thread. Production runs CONNECTION_FLASK_DEBUG=0: no line per request.
"""

from __future__ import annotations

import logging

from connection_flask.settings import Settings

log = logging.getLogger("connection_flask")

LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def configure(settings: Settings) -> None:
    """Send the service's lines where Gunicorn's error log goes, through its handlers (which it
    reopens on SIGUSR1), so operators find everything in one stream. Outside Gunicorn (tests,
    ``flask run``) they propagate to the root logger."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers:
        log.handlers = list(gunicorn_log.handlers)
        log.propagate = False
    log.setLevel(LEVELS[settings.debug_level])
