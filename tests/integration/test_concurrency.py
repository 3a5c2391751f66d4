"""Eight client threads publish, look up and retract at once against real Gunicorn."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import BIN, Server

pytestmark = pytest.mark.integration

THREADS = 8
SECONDS = 3.0


def call(port: int, path: str, body: Any) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_concurrent_publish_lookup_retract_keeps_exact_state(
    start_server: Callable[..., Server],
) -> None:
    server = start_server([str(BIN / "connection-flask")], env={"ENTRY_TTL": "600"})
    statuses: list[int] = []
    expected: dict[str, set[str]] = {}
    errors: list[str] = []
    deadline = time.monotonic() + SECONDS

    def worker(n: int) -> None:
        mine: set[str] = set()
        i = 0
        while time.monotonic() < deadline and not errors:
            uids = [f"t{n}-c{i}-{k}" for k in range(3)]
            conns = [
                {"uid": u, "uri": f"tcp://10.0.0.{n}:{i}", "data_type": "T", "connection_type": 0}
                for u in uids
            ]
            status, _ = call(server.port, "/publish", {"partition": "shared", "connections": conns})
            statuses.append(status)
            mine.update(uids)
            status, body = call(
                server.port, "/getconnection/shared", {"uid_regex": f"t{n}-.*", "data_type": "T"}
            )
            statuses.append(status)
            found = {e["uid"] for e in json.loads(body)} if status == 200 else set()
            if found != mine:
                errors.append(f"thread {n}: lookup saw {len(found)} uids, expected {len(mine)}")
            if i % 2:
                status, _ = call(
                    server.port,
                    "/retract",
                    {"partition": "shared", "connections": [{"connection_id": uids[0]}]},
                )
                statuses.append(status)
                mine.discard(uids[0])
            i += 1
        expected[f"t{n}"] = mine

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    assert not errors, errors
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    status, body = call(server.port, "/getconnection/shared", {"uid_regex": ".*", "data_type": "T"})
    assert status == 200
    assert {e["uid"] for e in json.loads(body)} == set().union(*expected.values())
