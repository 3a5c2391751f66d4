"""Gunicorn configuration, every value from the environment through Settings.

Used as ``gunicorn --config python:connection_flask.gunicorn_conf connection_flask.wsgi:app``
(the container, ``make run`` and the ``connection-flask`` command all start it that way).
"""

from __future__ import annotations

import inspect
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

# Only settings, and the multiprocess helper that imports no prometheus_client: importing the
# WSGI module here would build an app (and fix the metrics' storage) in the Gunicorn master.
from connection_flask import multiprocess
from connection_flask.settings import MULTI_WORKER_MESSAGE, Settings

_settings = Settings.from_env()

bind = [_settings.bind]
workers = _settings.workers
# gevent is ours: Gunicorn's gevent worker plus a deadline on a new connection's headers.
WORKER_CLASSES = {
    "gevent": "connection_flask.worker.GeventWorker",
    "gthread": "gthread",
    "sync": "sync",
}
worker_class = WORKER_CLASSES[_settings.worker_class]
threads = _settings.threads
worker_connections = _settings.worker_connections
timeout = _settings.timeout
# The arbiter kills a worker this long after SIGTERM: the drain period plus the time in-flight
# requests get once it ends (see post_worker_init).
graceful_timeout = int(_settings.drain_seconds + _settings.graceful_timeout + 0.999)
keepalive = _settings.keepalive
accesslog = _settings.access_log or None
# Without the access lines of answered watches (connection_flask.worker.Logger says why).
logger_class = "connection_flask.worker.Logger"
errorlog = "-"
loglevel = "debug" if _settings.debug_level >= 2 else "info"
# The heartbeat file is touched constantly: keep it off disk (tmpfs or a k8s emptyDir).
worker_tmp_dir = _settings.worker_tmp_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
# Gunicorn's control socket lives at one path per user: several servers would fight over it,
# and a read-only container has nowhere to put it.
control_socket_disable = True


# Descriptors a worker needs besides its client sockets: listeners, log files, the heartbeat
# file, the sweeper, Python's own.
SPARE_FDS = 64


def on_starting(server: Any) -> None:
    if server.cfg.workers > 1 and _settings.store == "memory":
        raise SystemExit(MULTI_WORKER_MESSAGE.format(n=server.cfg.workers))
    raise_fd_limit(server.cfg.worker_connections + SPARE_FDS, server.log)
    global _metrics_dir  # noqa: PLW0603 (the hooks share nothing else; on_exit removes it)
    _metrics_dir = multiprocess.prepare(server.cfg.workers, server.cfg.worker_tmp_dir, server.log)


# The Prometheus multiprocess directory on_starting created, if any (connection_flask.multiprocess).
_metrics_dir: str | None = None


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_dead(worker.pid)


def on_exit(server: Any) -> None:
    multiprocess.remove(_metrics_dir)


def raise_fd_limit(needed: int, log: Any) -> None:
    """Raise the soft limit on open files to what worker_connections needs (the workers inherit
    it), as far as the hard limit allows: shells often start with a soft limit of 1024 while
    the hard limit is far higher. Past the hard limit, say so: accept() would fail with EMFILE
    once that many connections are open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit %d is below the %d that CONNECTION_FLASK_WORKER_CONNECTIONS needs: "
            "raise the hard limit (ulimit -Hn) or lower the setting",
            soft,
            needed,
        )


# Graceful shutdown. On SIGTERM Gunicorn's arbiter closes its listeners and forwards SIGTERM to
# the worker, which stops accepting at once: a load balancer probing /readyz would then see
# connection errors, never a 503, and clients that have not noticed yet would be refused. So the
# worker's SIGTERM handler is wrapped: it sets State.draining (/readyz answers 503) and the
# worker keeps serving everything for CONNECTION_FLASK_DRAIN_SECONDS, then Gunicorn's own
# graceful stop runs: no new connections, in-flight requests get CONNECTION_FLASK_GRACEFUL_TIMEOUT
# to finish. The process is gone within DRAIN_SECONDS + GRACEFUL_TIMEOUT of the SIGTERM (the
# arbiter's graceful_timeout above). SIGINT and SIGQUIT still stop at once.
def post_worker_init(worker: Any) -> None:
    draining = _draining_event(inspect.unwrap(worker.wsgi))
    original = signal.getsignal(signal.SIGTERM)
    if draining is None or not callable(original):
        return
    drain = _settings.drain_seconds
    started = threading.Event()

    def finish(sig: int) -> None:
        worker.cfg.set("graceful_timeout", _settings.graceful_timeout)
        original(sig, None)

    def start_drain(sig: int) -> None:
        draining.set()
        if started.is_set():
            return  # the arbiter forwards SIGTERM too: one drain only
        started.set()
        worker.log.info("SIGTERM: draining for %.1f s (/readyz answers 503)", drain)
        later(drain, finish, sig)

    later = _scheduler()

    def on_sigterm(sig: int, frame: Any) -> None:
        # Readiness fails at once (setting an Event never blocks); the rest is scheduled:
        # under gevent a signal handler may run inside the event loop, where anything that
        # could block (a lock, starting a thread) raises BlockingSwitchOutError, as Gunicorn's
        # own gevent worker avoids for SIGQUIT.
        draining.set()
        later(0, start_drain, sig)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)


def _scheduler() -> Callable[..., None]:
    """later(seconds, fn, *args): run fn after seconds, off the signal handler: a greenlet in
    a gevent worker, a timer thread otherwise."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        def spawn_later(seconds: float, fn: Callable[..., None], *args: Any) -> None:
            gevent.spawn_later(seconds, fn, *args)

        return spawn_later

    def later(seconds: float, fn: Callable[..., None], *args: Any) -> None:
        if seconds <= 0:
            fn(*args)
            return
        timer = threading.Timer(seconds, fn, args)
        timer.daemon = True
        timer.start()

    return later


def _draining_event(wsgi: Any) -> threading.Event | None:
    """The app's State.draining, or None if Gunicorn is serving some other app."""
    from connection_flask.state import EXTENSION

    extensions = getattr(wsgi, "extensions", None)
    holder = extensions.get(EXTENSION) if isinstance(extensions, dict) else None
    event = getattr(holder, "draining", None)
    return event if isinstance(event, threading.Event) else None
