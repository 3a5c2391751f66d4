"""Servers sharing one real redis-server (issue 14's acceptance): two Gunicorn servers of two
workers each serve one registry, lose nothing when one is killed, and ride out Redis going down,
coming back and coming back empty."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import README_LOOKUP, README_LOOKUP_ANSWER, README_PUBLISH, conn
from tests.integration.conftest import BIN, Server
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

Start = Callable[..., Server]
# drunc's client gives each request this long.
CLIENT_TIMEOUT = 0.5


def request(url: str, body: Any = None, timeout: float = 10) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_on_redis(start_server: Start, url: str, *, ready: bool = True, **env: str) -> Server:
    """The console script (config file and WSGI module: both worker guards) with 2 workers."""
    env = {
        "CONNECTION_FLASK_STORE": url,
        "CONNECTION_FLASK_WORKERS": "2",
        "CONNECTION_FLASK_DEBUG": "1",
        **env,
    }
    return start_server([str(BIN / "connection-flask")], env=env, ready=ready)


def wait_for(what: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def status_of(url: str) -> int | None:
    """The status of a GET, None while nothing listens yet."""
    try:
        return request(url, timeout=1)[0]
    except OSError:  # refused, or not answered yet while the workers boot
        return None


def lookup_pids(server: Server) -> set[str]:
    """The worker processes whose timing lines show a lookup."""
    return set(re.findall(r"\[(\d+)\] \[INFO\] lookup partition=", server.output()))


def test_two_servers_of_two_workers_serve_one_registry_and_survive_one_being_killed(
    start_server: Start, redis_server: RedisServer
) -> None:
    prefix = f"shared-{uuid.uuid4().hex[:8]}"
    one = start_on_redis(start_server, redis_server.url, CONNECTION_FLASK_STORE_PREFIX=prefix)
    other = start_on_redis(start_server, redis_server.url, CONNECTION_FLASK_STORE_PREFIX=prefix)
    assert request(one.url + "/publish", README_PUBLISH) == (200, b"OK")
    # Visible through the other server at once, from each of its workers.
    for _ in range(200):
        assert request(other.url + "/getconnection/ccTest", README_LOOKUP) == (
            200,
            README_LOOKUP_ANSWER,
        )
        if len(lookup_pids(other)) == 2:
            break
    assert len(lookup_pids(other)) == 2, other.output()

    parts = {f"part{i}": [conn(f"app{i}-{j}") for j in range(20)] for i in range(5)}
    for name, conns in parts.items():
        assert request(one.url + "/publish", {"partition": name, "connections": conns})[0] == 200
    one.stop(signal.SIGKILL)
    for name, conns in parts.items():
        status, body = request(
            other.url + f"/getconnection/{name}", {"uid_regex": ".*", "data_type": "TPSet"}
        )
        assert status == 200
        assert [e["uid"] for e in json.loads(body)] == sorted(c["uid"] for c in conns)


def test_redis_down_at_start_then_up_then_restarted_empty(
    start_server: Start, own_redis: RedisServer
) -> None:
    server = start_on_redis(start_server, own_redis.url, ready=False)
    wait_for(lambda: status_of(server.url + "/healthz") == 200, timeout=20)
    status, said = request(server.url + "/readyz")
    assert status == 503
    assert said.decode().startswith(f"store unavailable: {own_redis.url}: ")
    for path, body in (("/publish", README_PUBLISH), ("/getconnection/ccTest", README_LOOKUP)):
        start = time.perf_counter()
        status, answer = request(server.url + path, body)
        assert time.perf_counter() - start < CLIENT_TIMEOUT
        assert status == 503 and json.loads(answer)["error"].startswith("store unavailable: ")

    own_redis.start()  # no restart of the server: it recovers by itself
    wait_for(lambda: request(server.url + "/readyz")[0] == 200)
    assert request(server.url + "/publish", README_PUBLISH) == (200, b"OK")
    assert request(server.url + "/getconnection/ccTest", README_LOOKUP) == (
        200,
        README_LOOKUP_ANSWER,
    )

    own_redis.stop()
    own_redis.start()  # empty: nothing is saved
    wait_for(lambda: request(server.url + "/getconnection/ccTest", README_LOOKUP)[0] == 404)
    assert request(server.url + "/publish", README_PUBLISH) == (200, b"OK")
    assert request(server.url + "/getconnection/ccTest", README_LOOKUP) == (
        200,
        README_LOOKUP_ANSWER,
    )
    assert "Traceback" not in server.output()
