"""Redis memory per registry entry (issue 14's sizing figure): ``python bench/redis_memory.py``.

Starts a private ``redis-server`` (bench/server.py), fills it through ``RedisStore.publish`` the
way DAQ applications do (20 connections per application, 50 applications per call, one
partition per 100k entries) and prints ``used_memory`` per entry for each size asked for. The
entries are the benchmark's own (bench/workloads.py), so the uid and uri lengths are those of the
throughput tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from connection_flask.store import Connection, RedisStore
from server import redis_server
from workloads import CONNS_PER_APP, connection

PER_PARTITION = 100_000
APPS_PER_CALL = 50


def fill(store: RedisStore, entries: int) -> None:
    apps = entries // CONNS_PER_APP
    for first in range(0, apps, APPS_PER_CALL):
        batch = [
            Connection(**connection(app, conn))
            for app in range(first, min(first + APPS_PER_CALL, apps))
            for conn in range(CONNS_PER_APP)
        ]
        partition = f"bench{first * CONNS_PER_APP // PER_PARTITION}"
        store.publish(partition, batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp), "memory") as redis:
        for entries in args.sizes:
            client = redis.client()
            client.flushall()
            before = int(client.info("memory")["used_memory"])
            store = RedisStore(redis.url, 3600, 60, timeout=5.0)
            start = time.perf_counter()
            fill(store, entries)
            took = time.perf_counter() - start
            used = int(client.info("memory")["used_memory"]) - before
            print(
                f"{entries:>9,} entries: used_memory +{used / 2**20:,.1f} MiB, "
                f"{used / entries:,.0f} bytes per entry (filled in {took:.1f} s)",
                flush=True,
            )
            store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
