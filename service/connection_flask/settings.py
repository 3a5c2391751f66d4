"""Environment -> one frozen Settings object.

Every environment variable the service (and its Gunicorn config) reads is declared here, so the
README table, the Helm chart and the tests can all be checked against one list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any
    help: str


T = TypeVar("T")


def _setting(default: T, env: str, text: str, *, secret: bool = False) -> T:
    """A field of Settings with the environment variable it is read from and its README help.
    Typed as its default, so mypy checks the defaults and sees that every field has one."""
    return field(default=default, repr=not secret, metadata={"env": env, "help": text})


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")

# Said by both guards (the Gunicorn config hook and the WSGI module) when workers > 1.
MULTI_WORKER_MESSAGE = (
    "connection-flask keeps its registry in this process's memory: with {n} Gunicorn workers "
    "each would hold a different registry and lookups would miss what was published to the "
    "others. Start it with --workers=1 (add --threads for concurrency), or keep the registry in "
    "Redis (CONNECTION_FLASK_STORE=redis://...), which every worker shares."
)

# What CONNECTION_FLASK_STORE may name besides "memory".
STORE_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    """Every setting the service and its Gunicorn config read, declared once: field order is
    the README table's order, and describe() and from_env() read the fields."""

    entry_ttl: float = _setting(
        10.0, "ENTRY_TTL", "Seconds after its last publish an entry stays visible."
    )
    purge_grace: float = _setting(
        60.0,
        "CONNECTION_FLASK_PURGE_GRACE",
        "Seconds an expired entry is kept (invisible) before it is removed for good.",
    )
    debug_level: int = _setting(
        1,
        "CONNECTION_FLASK_DEBUG",
        "0 warnings only, 1 timing of publish/lookup, 2 what was published/looked up, "
        "3 request JSON.",
    )
    max_body_bytes: int = _setting(
        4 * 1024 * 1024, "CONNECTION_FLASK_MAX_BODY_BYTES", "Largest request body accepted (413)."
    )
    max_connections_per_publish: int = _setting(
        10_000,
        "CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH",
        "Most connections one publish or retract may carry.",
    )
    max_uid_length: int = _setting(1024, "CONNECTION_FLASK_MAX_UID_LENGTH", "Longest uid accepted.")
    max_uri_length: int = _setting(2048, "CONNECTION_FLASK_MAX_URI_LENGTH", "Longest uri accepted.")
    max_data_type_length: int = _setting(
        256, "CONNECTION_FLASK_MAX_DATA_TYPE_LENGTH", "Longest data_type accepted."
    )
    max_partition_length: int = _setting(
        256, "CONNECTION_FLASK_MAX_PARTITION_LENGTH", "Longest partition name accepted."
    )
    max_regex_length: int = _setting(
        4096, "CONNECTION_FLASK_MAX_REGEX_LENGTH", "Longest uid_regex accepted."
    )
    max_partitions: int = _setting(
        1_000, "CONNECTION_FLASK_MAX_PARTITIONS", "Most partitions held at once (new ones get 429)."
    )
    max_entries_per_partition: int = _setting(
        500_000,
        "CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION",
        "Most entries one partition holds (publishes adding more get 429).",
    )
    max_entries: int = _setting(
        1_000_000,
        "CONNECTION_FLASK_MAX_ENTRIES",
        "Most entries held across all partitions (publishes adding more get 429).",
    )
    write_token: str = _setting(
        "",
        "CONNECTION_FLASK_WRITE_TOKEN",
        "If set, publish/retract/purge/reset need 'Authorization: Bearer <token>'.",
        secret=True,
    )
    read_token: str = _setting(
        "",
        "CONNECTION_FLASK_READ_TOKEN",
        "If set, lookups, / and /stats need 'Authorization: Bearer <token>' (this or the write "
        "token); probes and /metrics stay open.",
        secret=True,
    )
    bind: str = _setting("0.0.0.0:5000", "CONNECTION_FLASK_BIND", "Gunicorn listen address.")
    workers: int = _setting(
        1,
        "CONNECTION_FLASK_WORKERS",
        "Gunicorn workers. Must be 1 with the memory store; any number with Redis.",
    )
    threads: int = _setting(
        2, "CONNECTION_FLASK_THREADS", "Threads per worker (gthread only; gevent needs none)."
    )
    worker_class: str = _setting(
        "gevent",
        "CONNECTION_FLASK_WORKER_CLASS",
        "Gunicorn worker class: gevent (a slow or idle socket costs a greenlet, not a thread), "
        "gthread or sync.",
    )
    worker_connections: int = _setting(
        10_000,
        "CONNECTION_FLASK_WORKER_CONNECTIONS",
        "Most open client connections per worker (gevent); each needs a file descriptor.",
    )
    header_timeout: float = _setting(
        10.0,
        "CONNECTION_FLASK_HEADER_TIMEOUT",
        "Seconds a new connection has to send complete request headers before it is closed.",
    )
    body_timeout: float = _setting(
        10.0,
        "CONNECTION_FLASK_BODY_TIMEOUT",
        "Seconds a client has to send a whole request body (408 past it).",
    )
    timeout: int = _setting(30, "CONNECTION_FLASK_TIMEOUT", "Gunicorn worker timeout, seconds.")
    graceful_timeout: int = _setting(
        20,
        "CONNECTION_FLASK_GRACEFUL_TIMEOUT",
        "Seconds in-flight requests get to finish once draining ends.",
    )
    drain_seconds: float = _setting(
        5.0,
        "CONNECTION_FLASK_DRAIN_SECONDS",
        "Seconds the server keeps serving after SIGTERM with /readyz answering 503.",
    )
    keepalive: int = _setting(
        5,
        "CONNECTION_FLASK_KEEPALIVE",
        "Seconds an idle keep-alive connection is kept for its next request (at least 1).",
    )
    sweep_interval: float = _setting(
        1.0,
        "CONNECTION_FLASK_SWEEP_INTERVAL",
        "Seconds between the background sweeper's passes, which remove entries expired for "
        "longer than the purge grace even when nobody publishes.",
    )
    dump_page_size: int = _setting(
        100,
        "CONNECTION_FLASK_DUMP_PAGE_SIZE",
        "Entries per partition the dump page (GET /) shows before linking to the next page.",
    )
    access_log: str = _setting(
        "-", "CONNECTION_FLASK_ACCESS_LOG", "Gunicorn access log target ('-' stdout, '' off)."
    )
    worker_tmp_dir: str = _setting(
        "",
        "CONNECTION_FLASK_WORKER_TMP_DIR",
        "Gunicorn heartbeat dir; empty means /dev/shm when it exists (tmpfs), else the default.",
    )
    watch_max_wait: float = _setting(
        60.0,
        "CONNECTION_FLASK_WATCH_MAX_WAIT",
        "Longest a watch (admin API, index=N) waits for a change, seconds; a longer wait is cut "
        "to this.",
    )
    max_watches: int = _setting(
        1_000,
        "CONNECTION_FLASK_MAX_WATCHES",
        "Most watches waiting at once (more get 429); under gthread also at most THREADS - 1, "
        "under sync none.",
    )
    store: str = _setting(
        "memory",
        "CONNECTION_FLASK_STORE",
        "Where entries live: memory (this process) or a Redis URL (redis://, rediss:// for TLS, "
        "unix://; password in the URL) that workers and replicas share.",
        secret=True,
    )
    store_prefix: str = _setting(
        "connection-flask",
        "CONNECTION_FLASK_STORE_PREFIX",
        "Prefix of every Redis key, so several registries can share one Redis.",
    )
    store_timeout: float = _setting(
        0.2,
        "CONNECTION_FLASK_STORE_TIMEOUT",
        "Seconds to connect to or hear from Redis before answering 503.",
    )

    def __post_init__(self) -> None:
        if self.entry_ttl <= 0:
            raise SettingsError(f"ENTRY_TTL must be > 0, got {self.entry_ttl}")
        if self.purge_grace < 0:
            raise SettingsError(
                f"CONNECTION_FLASK_PURGE_GRACE must be >= 0, got {self.purge_grace}"
            )
        if not 0 <= self.debug_level <= 3:
            raise SettingsError(f"CONNECTION_FLASK_DEBUG must be 0..3, got {self.debug_level}")
        if self.worker_class not in ("gthread", "gevent", "sync"):
            raise SettingsError(
                f"CONNECTION_FLASK_WORKER_CLASS must be gthread, gevent or sync, "
                f"got {self.worker_class!r}"
            )
        env = {f.name: f.metadata["env"] for f in fields(self)}
        self._check_store()
        for name in ("header_timeout", "body_timeout", "sweep_interval", "store_timeout"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{env[name]} must be > 0, got {getattr(self, name)}")
        if self.keepalive < 1:
            # Gunicorn's async workers bound the wait for a request's headers only inside
            # their keep-alive loop: with keep-alive off a silent socket would be held forever.
            raise SettingsError(f"CONNECTION_FLASK_KEEPALIVE must be >= 1, got {self.keepalive}")
        if self.dump_page_size < 1:
            raise SettingsError(
                f"CONNECTION_FLASK_DUMP_PAGE_SIZE must be >= 1, got {self.dump_page_size}"
            )
        for name in ("write_token", "read_token"):
            # Secrets mounted from files often end in a newline: it is not part of the token.
            token = getattr(self, name).strip()
            object.__setattr__(self, name, token)
            if token and not _TOKEN_CHARS.fullmatch(token):
                raise SettingsError(
                    f"{env[name]} must be printable ASCII without spaces "
                    "(it travels in an HTTP header)"
                )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise SettingsError(f"{env[f.name]} must not be negative, got {value}")

    def _check_store(self) -> None:
        if self.store == "memory":
            return
        if "://" not in self.store:
            got = repr(self.store)  # not a URL, so no password to hide
        elif (scheme := urlsplit(self.store).scheme) not in STORE_SCHEMES:
            got = f"a {scheme}:// URL"
        else:
            got = ""
        if got:
            raise SettingsError(
                "CONNECTION_FLASK_STORE must be memory or a redis://, rediss:// or unix:// URL, "
                f"got {got}"
            )
        if not self.store_prefix:
            raise SettingsError("CONNECTION_FLASK_STORE_PREFIX must not be empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            spec = _describe(f)
            raw = env.get(spec.env)
            if raw is None or (raw.strip() == "" and not isinstance(spec.default, str)):
                continue
            values[f.name] = _convert(spec, raw)
        return cls(**values)


def describe() -> list[Setting]:
    """Every setting in README order: used to keep the README table honest."""
    return [_describe(f) for f in fields(Settings)]


def _describe(f: Field[Any]) -> Setting:
    return Setting(f.metadata["env"], f.default, f.metadata["help"])


ENVIRONMENT_VARIABLES: frozenset[str] = frozenset(s.env for s in describe())


def _convert(spec: Setting, raw: str) -> Any:
    kind = type(spec.default)
    try:
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind is int:
            return int(raw.strip())
        if kind is float:
            return float(raw.strip())
    except ValueError:
        raise SettingsError(
            f"{spec.env} must be {'an integer' if kind is int else 'a number'}, got {raw!r}"
        ) from None
    return raw
