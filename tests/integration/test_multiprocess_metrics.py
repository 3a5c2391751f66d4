"""/metrics under real Gunicorn in Prometheus multiprocess mode: one scrape, whichever worker
answers it, reports the pod's total, and a worker's death loses none of it.

Two workers need a shared store (the memory store refuses them), so those tests run against a
real redis-server started here; one worker with PROMETHEUS_MULTIPROC_DIR set runs the same
machinery on the memory store.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import conn
from tests.integration.conftest import BIN, Server
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

COMMAND = [str(BIN / "gunicorn"), "--config", "python:connection_flask.gunicorn_conf"]
APP = "connection_flask.wsgi:app"
PUBLISHED = "connection_flask_connections_published_total"


def publish(url: str, partition: str, uid: str) -> None:
    body = json.dumps({"partition": partition, "connections": [conn(uid)]}).encode()
    req = urllib.request.Request(
        url + "/publish", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def publish_many(url: str, partition: str, n: int) -> None:
    # Concurrent, each on its own connection, so that every worker gets a share.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: publish(url, partition, f"u{i}"), range(n)))


def scrape(url: str) -> dict[str, list[float]]:
    """Sample name (labels dropped) -> every value of it, so duplicates show."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s.value)
    return out


def published_by_worker(directory: Path) -> dict[int, float]:
    """Worker pid -> connections it published, from its own counter file alone."""
    out = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        out[pid] = sum(s.value for f in families for s in f.samples if s.name == PUBLISHED)
    return out


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_killed_worker_loses_none_of_the_pods_counts(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    server = start_server([*COMMAND, APP], env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    for i in range(3):
        publish(server.url, "p", f"u{i}")
    [first] = published_by_worker(directory)
    assert (directory / f"gauge_livemax_{first}.db").exists()
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(published_by_worker(directory)) == 2, "a new worker")
    server.wait_ready()
    # child_exit dropped the dead worker's live gauge; its counter file still counts.
    wait_for(lambda: not (directory / f"gauge_livemax_{first}.db").exists(), "child_exit")
    s = scrape(server.url)
    assert s[PUBLISHED] == [3.0]
    assert s["connection_flask_build_info"] == [1.0]
    # The gauge is the store's count once, not a sum over workers: the memory store went with
    # the killed worker; Redis (CONNECTION_FLASK_TEST_STORE=redis) kept the partition.
    on_redis = os.environ.get("CONNECTION_FLASK_TEST_STORE") == "redis"
    assert s["connection_flask_partitions"] == [1.0 if on_redis else 0.0]


# --- two workers on a shared Redis store -----------------------------------------------------


@pytest.fixture
def redis_url(own_redis: RedisServer) -> str:
    own_redis.start()
    return own_redis.url


def start_pod(start: Callable[..., Server], redis_url: str, tmp_dir: Path) -> Server:
    """A server as the chart runs one with the Redis store: two workers, the multiprocess
    directory left to the default (a fresh one under the worker tmp dir)."""
    tmp_dir.mkdir()
    env = {
        "CONNECTION_FLASK_STORE": redis_url,
        "CONNECTION_FLASK_WORKERS": "2",
        "CONNECTION_FLASK_WORKER_TMP_DIR": str(tmp_dir),
    }
    server = start([*COMMAND, APP], env=env)
    # Ready means one worker answers; wait for the other's app (its metric files) too.
    wait_for(lambda: len(published_by_worker(metrics_dir(tmp_dir))) == 2, "the second worker")
    return server


def metrics_dir(tmp_dir: Path) -> Path:
    [directory] = tmp_dir.glob("connection-flask-metrics-*")
    return directory


def test_two_workers_report_the_pods_total_on_every_scrape(
    start_server: Callable[..., Server], redis_url: str, tmp_path: Path
) -> None:
    server = start_pod(start_server, redis_url, tmp_path / "pod")
    publish_many(server.url, "p", 40)
    publish_many(server.url, "q", 10)
    by_worker = published_by_worker(metrics_dir(tmp_path / "pod"))
    assert len(by_worker) == 2 and all(by_worker.values()), (
        f"both workers must have served publishes for this test to mean anything: {by_worker}"
    )
    for _ in range(10):  # each scrape lands on either worker
        s = scrape(server.url)
        assert s[PUBLISHED] == [50.0]
        # From the shared store once, not once per worker.
        assert s["connection_flask_partitions"] == [2.0]
        assert s["connection_flask_stored_entries"] == [50.0]
        assert s["connection_flask_build_info"] == [1.0]


def test_two_pods_on_one_redis_each_report_their_own_total(
    start_server: Callable[..., Server], redis_url: str, tmp_path: Path
) -> None:
    a = start_pod(start_server, redis_url, tmp_path / "a")
    b = start_pod(start_server, redis_url, tmp_path / "b")
    publish_many(a.url, "p", 30)
    publish_many(b.url, "q", 12)
    for pod, total in ((a, 30.0), (b, 12.0)):
        for _ in range(4):
            s = scrape(pod.url)
            assert s[PUBLISHED] == [total]
            assert s["connection_flask_partitions"] == [2.0], "the store is shared"


def test_the_default_directory_is_removed_when_the_server_stops(
    start_server: Callable[..., Server], redis_url: str, tmp_path: Path
) -> None:
    server = start_pod(start_server, redis_url, tmp_path / "pod")
    directory = metrics_dir(tmp_path / "pod")
    assert server.stop() == 0
    assert not directory.exists()
