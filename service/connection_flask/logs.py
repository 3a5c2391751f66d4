"""The service's log lines: levels from CONNECTION_FLASK_DEBUG, written into Gunicorn's error log.

Under Gunicorn a write to the log stream releases the GIL, and with the worker's other threads
waiting for it each write costs a round of thread handoffs. At CONNECTION_FLASK_DEBUG=1 (the
default) every publish and lookup logs a timing line, and writing each one as it came cost a
publish 5-10% of its throughput (docs/PERFORMANCE.md, change 13). So the service's lines are
formatted when logged, exactly as Gunicorn's handler would format them, and written in batches
at most ``FLUSH_SECONDS`` late; warnings and errors wake the writer at once.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
import weakref
from typing import Any

from connection_flask.settings import Settings

log = logging.getLogger("connection_flask")

LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}
# How late an info or debug line may reach the log: short enough for someone tailing it.
FLUSH_SECONDS = 0.1


def configure(settings: Settings) -> None:
    """Send the service's lines where Gunicorn's error log goes, so operators find everything
    in one stream. Outside Gunicorn (tests, ``flask run``) they propagate to the root logger."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers:
        for old in log.handlers:
            if isinstance(old, BatchingHandler):
                old.close()
        log.handlers = [
            BatchingHandler(h) if isinstance(h, logging.StreamHandler) else h
            for h in gunicorn_log.handlers
        ]
        log.propagate = False
    log.setLevel(LEVELS[settings.debug_level])


class BatchingHandler(logging.Handler):
    """Formats each record that ``target``'s filters pass with its formatter, and writes them
    to ``target``'s stream from a thread of its own, many lines per write, at most
    ``interval`` seconds late.

    The target keeps its stream: Gunicorn reopens it on SIGUSR1 and it is written under the
    target's lock. Records at WARNING or above are written at once (after what is pending,
    in order). ``flush()``, which ``logging.shutdown`` calls at exit, writes what is pending.
    """

    def __init__(self, target: logging.StreamHandler[Any], interval: float = FLUSH_SECONDS) -> None:
        super().__init__(target.level)
        self.target = target
        self.interval = interval
        self._closed = False
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._pending: list[str] = []
        self._pending_set = threading.Event()  # set while a line waits for the writer
        self._urgent = threading.Event()  # a warning waits: write without gathering more
        self._write_lock = threading.Lock()  # one writer at a time, so batches keep their order
        self._writer_started = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.filter(record):
            return
        try:
            line = self.target.format(record) + self.target.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)  # Handler.handle holds self.lock
        if record.levelno >= logging.WARNING:
            self._urgent.set()
        if not self._pending_set.is_set():
            if not self._writer_started:
                self._writer_started = True
                threading.Thread(target=self._write_loop, name="log-writer", daemon=True).start()
            self._pending_set.set()

    def flush(self) -> None:
        with self._write_lock:
            with self.lock:  # type: ignore[union-attr]
                lines, self._pending = self._pending, []
            if not lines:
                return
            target = self.target
            target.acquire()
            try:
                target.stream.write("".join(lines))
                target.flush()
            except Exception:
                if logging.raiseExceptions:  # as Handler.handleError does: report, never raise
                    traceback.print_exc()
            finally:
                target.release()

    def close(self) -> None:
        self._closed = True
        self.flush()
        self._pending_set.set()  # let the writer see it is closed, without waiting to gather
        self._urgent.set()
        super().close()

    def _write_loop(self) -> None:
        while not self._closed:
            self._pending_set.wait()
            self._urgent.wait(self.interval)  # gather lines for a while, unless one is urgent
            self._pending_set.clear()
            self._urgent.clear()
            self.flush()


# A forked child (Gunicorn's --preload builds the app in the master) has no writer thread and
# may have copied a held lock: start afresh, leaving the parent's pending lines to the parent.
_live: weakref.WeakSet[BatchingHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_live):
        handler._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
