"""The Redis store's Lua scripts (one per operation, each with the shared helpers before it),
this process's link to Redis that runs them, the index keys they range over and the values
some of their replies hold.

Every write is one script, so Redis runs it whole and alone: a publish of N connections is all
visible or none, and limits are checked against what the store holds at that moment. Key layout
and clock are described in redis_common.lua.
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connection_flask.store.errors import StoreUnavailable
from connection_flask.store.values import Clock, EntryView

# Connections to Redis per process: a script takes well under a millisecond, so a few dozen
# serve thousands of concurrent requests (the change listener holds one of them).
POOL_SIZE = 64
# How long a request may queue for one of them. Longer than the socket timeout: a queue is this
# process's own burst (1,000 watches woken by one change queue ~2,000 scripts), not a Redis
# fault, and answering it 503 after STORE_TIMEOUT refused most of such a burst (measured with
# bench/watch.py --store redis). A hung Redis still frees every connection within the timeout.
POOL_WAIT = 2.0

NAMES = ("publish", "lookup", "retract", "sweep", "read", "page", "stats")


def sources() -> dict[str, str]:
    """Each script's full source, helpers first."""
    files = resources.files(__package__)
    common = (files / "redis_common.lua").read_text()
    return {name: common + (files / f"redis_{name}.lua").read_text() for name in NAMES}


class Scripts:
    """The scripts registered with one client (``register_script``: EVALSHA, loading the
    script again when the server has forgotten it, e.g. after a restart)."""

    def __init__(self, client: Any, texts: dict[str, str]) -> None:
        self.publish = client.register_script(texts["publish"])
        self.lookup = client.register_script(texts["lookup"])
        self.retract = client.register_script(texts["retract"])
        self.sweep = client.register_script(texts["sweep"])
        self.read = client.register_script(texts["read"])
        self.page = client.register_script(texts["page"])
        self.stats = client.register_script(texts["stats"])


class RedisLink:
    """This process's client of one Redis and the scripts registered with it, made at first use
    and again in a forked child (a connection shared across a fork would interleave replies):
    Gunicorn's workers each get theirs. Every Redis error or timeout becomes StoreUnavailable."""

    def __init__(self, url: str, prefix: str, timeout: float, clock: Clock | None) -> None:
        self.url = url
        self.name = describe(url)
        self.prefix = prefix
        self.timeout = timeout
        self.clock = clock  # None: the scripts read Redis's TIME
        self._texts = sources()
        self._lock = threading.Lock()
        self._client: Any = None
        self._scripts: Scripts | None = None
        self._pid = 0

    def client(self) -> Any:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    pool = redis.BlockingConnectionPool.from_url(
                        self.url,
                        # A gevent worker may run thousands of requests at once: they share
                        # this many connections, queueing for one up to POOL_WAIT.
                        max_connections=POOL_SIZE,
                        timeout=max(POOL_WAIT, self.timeout),
                        socket_timeout=self.timeout,
                        socket_connect_timeout=self.timeout,
                        # One immediate retry on a broken connection (Redis restarted), none on
                        # a timeout: a request waits one timeout at most, never a backoff.
                        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                    )
                    self._client = redis.Redis(connection_pool=pool)
                    self._scripts = Scripts(self._client, self._texts)
                    self._pid = os.getpid()
        return self._client

    def run(self, name: str, *args: object) -> Any:
        """Run one script; its first arguments are always the prefix and the clock."""
        self.client()
        now = "" if self.clock is None else repr(self.clock())
        try:
            return getattr(self._scripts, name)(args=[self.prefix, now, *args])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"store unavailable: {self.name}: {exc}") from None

    def command(self, name: str, *args: object, **kwargs: object) -> Any:
        try:
            return getattr(self.client(), name)(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"store unavailable: {self.name}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            client, self._client, self._scripts, self._pid = self._client, None, None, 0
        if client is not None:
            client.close()

    def after_fork_in_child(self) -> None:
        # A lock another parent thread held at the fork would never be released here.
        self._lock = threading.Lock()


def member_head(data_type: str) -> bytes:
    """What every index member of ``data_type`` starts with, the uid following it: its length
    first, so no data_type's members run into another's (redis_common.lua ``member``)."""
    encoded = data_type.encode()
    return b"%d:%s" % (len(encoded), encoded)


# No UTF-8 text holds this byte, so it closes the range of every uid with a given prefix.
AFTER_ALL = b"\xff"


def lookup_range(head: bytes, literal: str | None, prefix: str) -> tuple[bytes, bytes]:
    """BYLEX bounds of the index members of one uid (``literal``) or of every uid starting
    with ``prefix``."""
    if literal is not None:
        exact = b"[" + head + literal.encode()
        return exact, exact
    start = head + prefix.encode()
    return b"[" + start, b"(" + start + AFTER_ALL


def describe(url: str) -> str:
    """A store's URL as it may be shown: without its password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def page_views(reply: list[Any], limit: int, ttl: float) -> tuple[list[EntryView], bool]:
    """The page script's reply (its time, then uid, JSON, time of each data_type's first
    entries) as MemoryStore.page answers: the first ``limit`` by uid (bytes of UTF-8 sort as
    the text's code points do), and whether more follow."""
    now = float(reply[0])
    rows = sorted(zip(reply[1::3], reply[2::3], reply[3::3], strict=True))[: limit + 1]
    views = []
    for _, json, stamp in rows:
        fields = orjson.loads(json)
        age = now - float(stamp)
        views.append(
            EntryView(
                fields["uid"],
                fields["uri"],
                fields["data_type"],
                fields["connection_type"],
                fields["capacity"],
                age,
                age >= ttl,
            )
        )
    return views[:limit], len(views) > limit
