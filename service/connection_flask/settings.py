"""Environment -> one frozen Settings object.

Every environment variable the service (and its Gunicorn config) reads is declared here, so the
README table, the Helm chart and the tests can all be checked against one list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any
    help: str


# name -> (environment variable, default, help). Order is the README's order.
_SPEC: dict[str, Setting] = {
    "entry_ttl": Setting(
        "ENTRY_TTL", 10.0, "Seconds after its last publish an entry stays visible."
    ),
    "purge_grace": Setting(
        "CONNECTION_FLASK_PURGE_GRACE",
        60.0,
        "Seconds an expired entry is kept (invisible) before it is removed for good.",
    ),
    "debug_level": Setting(
        "CONNECTION_FLASK_DEBUG",
        1,
        "0 warnings only, 1 timing of publish/lookup, 2 what was published/looked up, "
        "3 request JSON.",
    ),
    "max_body_bytes": Setting(
        "CONNECTION_FLASK_MAX_BODY_BYTES", 4 * 1024 * 1024, "Largest request body accepted (413)."
    ),
    "max_connections_per_publish": Setting(
        "CONNECTION_FLASK_MAX_CONNECTIONS_PER_PUBLISH",
        10_000,
        "Most connections one publish or retract may carry.",
    ),
    "max_uid_length": Setting("CONNECTION_FLASK_MAX_UID_LENGTH", 1024, "Longest uid accepted."),
    "max_uri_length": Setting("CONNECTION_FLASK_MAX_URI_LENGTH", 2048, "Longest uri accepted."),
    "max_data_type_length": Setting(
        "CONNECTION_FLASK_MAX_DATA_TYPE_LENGTH", 256, "Longest data_type accepted."
    ),
    "max_partition_length": Setting(
        "CONNECTION_FLASK_MAX_PARTITION_LENGTH", 256, "Longest partition name accepted."
    ),
    "max_regex_length": Setting(
        "CONNECTION_FLASK_MAX_REGEX_LENGTH", 4096, "Longest uid_regex accepted."
    ),
    "max_partitions": Setting(
        "CONNECTION_FLASK_MAX_PARTITIONS", 1_000, "Most partitions held at once (new ones get 429)."
    ),
    "max_entries_per_partition": Setting(
        "CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION",
        500_000,
        "Most entries one partition holds (publishes adding more get 429).",
    ),
    "max_entries": Setting(
        "CONNECTION_FLASK_MAX_ENTRIES",
        1_000_000,
        "Most entries held across all partitions (publishes adding more get 429).",
    ),
    "write_token": Setting(
        "CONNECTION_FLASK_WRITE_TOKEN",
        "",
        "If set, publish/retract/purge/reset need 'Authorization: Bearer <token>'.",
    ),
    "read_token": Setting(
        "CONNECTION_FLASK_READ_TOKEN",
        "",
        "If set, lookups, / and /stats need 'Authorization: Bearer <token>' (this or the write "
        "token); probes and /metrics stay open.",
    ),
    "bind": Setting("CONNECTION_FLASK_BIND", "0.0.0.0:5000", "Gunicorn listen address."),
    "workers": Setting(
        "CONNECTION_FLASK_WORKERS", 1, "Gunicorn workers. Must be 1: the registry lives in memory."
    ),
    "threads": Setting(
        "CONNECTION_FLASK_THREADS", 2, "Threads per worker (gthread only; gevent needs none)."
    ),
    "worker_class": Setting(
        "CONNECTION_FLASK_WORKER_CLASS",
        "gevent",
        "Gunicorn worker class: gevent (a slow or idle socket costs a greenlet, not a thread), "
        "gthread or sync.",
    ),
    "worker_connections": Setting(
        "CONNECTION_FLASK_WORKER_CONNECTIONS",
        10_000,
        "Most open client connections per worker (gevent); each needs a file descriptor.",
    ),
    "header_timeout": Setting(
        "CONNECTION_FLASK_HEADER_TIMEOUT",
        10.0,
        "Seconds a new connection has to send complete request headers before it is closed.",
    ),
    "body_timeout": Setting(
        "CONNECTION_FLASK_BODY_TIMEOUT",
        10.0,
        "Seconds a client has to send a whole request body (408 past it).",
    ),
    "timeout": Setting("CONNECTION_FLASK_TIMEOUT", 30, "Gunicorn worker timeout, seconds."),
    "graceful_timeout": Setting(
        "CONNECTION_FLASK_GRACEFUL_TIMEOUT",
        20,
        "Seconds in-flight requests get to finish once draining ends.",
    ),
    "drain_seconds": Setting(
        "CONNECTION_FLASK_DRAIN_SECONDS",
        5.0,
        "Seconds the server keeps serving after SIGTERM with /readyz answering 503.",
    ),
    "keepalive": Setting(
        "CONNECTION_FLASK_KEEPALIVE",
        5,
        "Seconds an idle keep-alive connection is kept for its next request (at least 1).",
    ),
    "sweep_interval": Setting(
        "CONNECTION_FLASK_SWEEP_INTERVAL",
        1.0,
        "Seconds between the background sweeper's passes, which remove entries expired for "
        "longer than the purge grace even when nobody publishes.",
    ),
    "dump_page_size": Setting(
        "CONNECTION_FLASK_DUMP_PAGE_SIZE",
        100,
        "Entries per partition the dump page (GET /) shows before linking to the next page.",
    ),
    "access_log": Setting(
        "CONNECTION_FLASK_ACCESS_LOG", "-", "Gunicorn access log target ('-' stdout, '' off)."
    ),
    "worker_tmp_dir": Setting(
        "CONNECTION_FLASK_WORKER_TMP_DIR",
        "",
        "Gunicorn heartbeat dir; empty means /dev/shm when it exists (tmpfs), else the default.",
    ),
}

_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")

# Said by both guards (the Gunicorn config hook and the WSGI module) when workers > 1.
MULTI_WORKER_MESSAGE = (
    "connection-flask keeps its registry in this process's memory: with {n} Gunicorn workers "
    "each would hold a different registry and lookups would miss what was published to the "
    "others. Start it with --workers=1 (add --threads for concurrency)."
)

ENVIRONMENT_VARIABLES: frozenset[str] = frozenset(s.env for s in _SPEC.values())


def describe() -> list[Setting]:
    """Every setting in README order: used to keep the README table honest."""
    return list(_SPEC.values())


@dataclass(frozen=True)
class Settings:
    entry_ttl: float = _SPEC["entry_ttl"].default
    purge_grace: float = _SPEC["purge_grace"].default
    debug_level: int = _SPEC["debug_level"].default
    max_body_bytes: int = _SPEC["max_body_bytes"].default
    max_connections_per_publish: int = _SPEC["max_connections_per_publish"].default
    max_uid_length: int = _SPEC["max_uid_length"].default
    max_uri_length: int = _SPEC["max_uri_length"].default
    max_data_type_length: int = _SPEC["max_data_type_length"].default
    max_partition_length: int = _SPEC["max_partition_length"].default
    max_regex_length: int = _SPEC["max_regex_length"].default
    max_partitions: int = _SPEC["max_partitions"].default
    max_entries_per_partition: int = _SPEC["max_entries_per_partition"].default
    max_entries: int = _SPEC["max_entries"].default
    write_token: str = field(default=_SPEC["write_token"].default, repr=False)
    read_token: str = field(default=_SPEC["read_token"].default, repr=False)
    bind: str = _SPEC["bind"].default
    workers: int = _SPEC["workers"].default
    threads: int = _SPEC["threads"].default
    worker_class: str = _SPEC["worker_class"].default
    worker_connections: int = _SPEC["worker_connections"].default
    header_timeout: float = _SPEC["header_timeout"].default
    body_timeout: float = _SPEC["body_timeout"].default
    timeout: int = _SPEC["timeout"].default
    graceful_timeout: int = _SPEC["graceful_timeout"].default
    drain_seconds: float = _SPEC["drain_seconds"].default
    keepalive: int = _SPEC["keepalive"].default
    sweep_interval: float = _SPEC["sweep_interval"].default
    dump_page_size: int = _SPEC["dump_page_size"].default
    access_log: str = _SPEC["access_log"].default
    worker_tmp_dir: str = _SPEC["worker_tmp_dir"].default

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
        for name in ("header_timeout", "body_timeout", "sweep_interval"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{_SPEC[name].env} must be > 0, got {getattr(self, name)}")
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
                    f"{_SPEC[name].env} must be printable ASCII without spaces "
                    "(it travels in an HTTP header)"
                )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise SettingsError(f"{_SPEC[f.name].env} must not be negative, got {value}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, spec in _SPEC.items():
            raw = env.get(spec.env)
            if raw is None or (raw.strip() == "" and not isinstance(spec.default, str)):
                continue
            values[name] = _convert(spec, raw)
        return cls(**values)


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
