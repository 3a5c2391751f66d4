"""connection_flask.client against a real Gunicorn server: the DAQ calls with drunc's semantics,
the Publisher (across a server restart too), and the admin API calls."""

from __future__ import annotations

import ast
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connection_flask.client import (
    Connection,
    NotFound,
    Publisher,
    Refused,
    RegistryClient,
    Unavailable,
)
from tests.integration.conftest import BIN, ROOT, Server, Starter, free_port

pytestmark = pytest.mark.integration

SERVE = [str(BIN / "connection-flask")]
TPSET = "TPSet"
# Generous for a loaded 2-core machine; drunc's 0.5 s is kept as the client's default.
TIMEOUT = 2.0


def conns(*uids: str) -> list[Connection]:
    return [Connection(u, f"tcp://127.0.0.1:{7000 + i}", TPSET) for i, u in enumerate(uids)]


@pytest.fixture(scope="module")
def server(start_module_server: Starter) -> Server:
    """Shared by the tests that do not change settings; each uses its own partition."""
    return start_module_server(SERVE)


@pytest.fixture
def registry(server: Server, request: pytest.FixtureRequest) -> Iterator[RegistryClient]:
    with RegistryClient(server.url, request.node.name, timeout=TIMEOUT) as client:
        yield client


def test_publish_then_lookup_returns_the_matches_in_uid_order(registry: RegistryClient) -> None:
    published = conns("b-1", "a-1", "a-2")
    registry.publish(published)
    assert registry.lookup("a-.*", TPSET) == [published[1], published[2]]


def test_lookup_of_an_unknown_partition_asks_until_its_wait_then_raises_not_found(
    registry: RegistryClient,
) -> None:
    started = time.monotonic()
    with pytest.raises(NotFound) as raised:
        registry.lookup(".*", TPSET, wait=0.3)
    assert time.monotonic() - started >= 0.3
    assert raised.value.status == 404


def test_lookup_matching_nothing_in_a_held_partition_returns_empty_after_its_wait(
    registry: RegistryClient,
) -> None:
    registry.publish(conns("a"))
    started = time.monotonic()
    assert registry.lookup("b", TPSET, wait=0.3) == []
    assert time.monotonic() - started >= 0.3


def test_lookup_finds_a_connection_published_while_it_waits(registry: RegistryClient) -> None:
    late = threading.Timer(0.3, registry.publish, [conns("late")])
    late.start()
    try:
        started = time.monotonic()
        assert [c.uid for c in registry.lookup("late", TPSET, wait=5)] == ["late"]
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        late.join()


def test_a_bad_regex_is_refused_with_the_servers_reason(registry: RegistryClient) -> None:
    registry.publish(conns("a"))
    with pytest.raises(Refused, match="uid_regex") as raised:
        registry.lookup("(unclosed", TPSET)
    assert raised.value.status == 400


def test_retract_removes_and_retracting_again_is_not_an_error(registry: RegistryClient) -> None:
    registry.publish(conns("a", "b"))
    assert registry.retract(["a"]) is True
    assert [c.uid for c in registry.lookup(".*", TPSET, wait=0)] == ["b"]
    assert registry.retract(["a"]) is False  # already gone: what the caller wanted


def test_retract_partition_removes_it_once(registry: RegistryClient) -> None:
    registry.publish(conns("a"))
    assert registry.retract_partition() is True
    assert registry.retract_partition() is False
    with pytest.raises(NotFound):
        registry.lookup(".*", TPSET, wait=0)


def test_partition_names_are_escaped_in_the_lookup_path(server: Server) -> None:
    with RegistryClient(server.url, "odd name%?#", timeout=TIMEOUT) as registry:
        registry.publish(conns("a"))
        assert [c.uid for c in registry.lookup("a", TPSET, wait=0)] == ["a"]
        registry.retract_partition()


def test_ready_is_true_for_a_serving_server(registry: RegistryClient) -> None:
    assert registry.ready()


def test_nothing_listening_is_unavailable_after_the_retries() -> None:
    with RegistryClient(f"127.0.0.1:{free_port()}", "p", retries=2, backoff=0.05) as registry:
        assert not registry.ready()
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            registry.publish(conns("a"))
        # Two pauses between three attempts: the first from 25-50 ms, the second 50-100 ms.
        assert time.monotonic() - started >= 0.075
        assert raised.value.status is None


class Busy(BaseHTTPRequestHandler):
    """Answers 503 (a proxy whose backend is restarting) to the first ``busy`` requests."""

    busy = 2
    seen = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        status = 503 if self.seen <= self.busy else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("retries", "succeeds"), [(2, True), (1, False)])
def test_503_is_retried_up_to_the_retries(retries: int, succeeds: bool) -> None:
    Busy.seen = 0
    with ThreadingHTTPServer(("127.0.0.1", 0), Busy) as busy:
        threading.Thread(target=busy.serve_forever, daemon=True).start()
        url = f"127.0.0.1:{busy.server_address[1]}"
        with RegistryClient(url, "p", retries=retries, backoff=0.01) as registry:
            if succeeds:
                registry.publish(conns("a"))
            else:
                with pytest.raises(Unavailable) as raised:
                    registry.publish(conns("a"))
                assert raised.value.status == 503
        busy.shutdown()
    assert Busy.seen == retries + 1


def test_write_token_comes_from_the_argument_or_the_environment(
    start_server: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(SERVE, env={"CONNECTION_FLASK_WRITE_TOKEN": "s3cret"})
    monkeypatch.delenv("CONNECTION_FLASK_WRITE_TOKEN", raising=False)
    with RegistryClient(server.url, "p", timeout=TIMEOUT) as anonymous:
        with pytest.raises(Refused) as raised:
            anonymous.publish(conns("a"))
        assert raised.value.status == 401
    with RegistryClient(server.url, "p", timeout=TIMEOUT, write_token="s3cret") as given:
        given.publish(conns("a"))
    monkeypatch.setenv("CONNECTION_FLASK_WRITE_TOKEN", "s3cret\n")  # as a mounted file has it
    with RegistryClient(server.url, "p", timeout=TIMEOUT) as from_env:
        assert from_env.retract(["a"]) is True


# ------------------------------------------------------------------------------- Publisher


def test_publisher_keeps_entries_alive_past_the_ttl_and_retracts_on_exit(
    start_server: Starter,
) -> None:
    server = start_server(SERVE, env={"ENTRY_TTL": "0.5"})
    with RegistryClient(server.url, "p", timeout=TIMEOUT) as registry:
        with Publisher(registry, conns("a"), interval=0.1):
            assert [c.uid for c in registry.lookup("a", TPSET, wait=0)] == ["a"]
            time.sleep(1.0)  # two TTLs
            assert [c.uid for c in registry.lookup("a", TPSET, wait=0)] == ["a"]
        with pytest.raises(NotFound):  # its last entry retracted, the partition is gone
            registry.lookup("a", TPSET, wait=0)


def test_publisher_republishes_to_a_restarted_server_and_logs_the_outage_once(
    start_server: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connection_flask.client")
    interval = 0.3
    first = start_server(SERVE)
    with (
        RegistryClient(first.url, "p", timeout=TIMEOUT) as registry,
        Publisher(registry, conns("a", "b"), interval=interval) as publisher,
    ):
        first.stop(signal.SIGKILL)  # a crash; a SIGTERM'd server takes a second longer
        wait_for(lambda: publisher.failing is not None, 5, "the publisher to notice the outage")
        time.sleep(3 * interval)  # several failed attempts
        start_server(SERVE, port=first.port)
        back = time.monotonic()
        found = registry.lookup(".*", TPSET, wait=5)
        reappeared = time.monotonic() - back
        assert [c.uid for c in found] == ["a", "b"]
        # The next attempt after the server is back: one interval, plus a slack for the machine.
        assert reappeared < 2 * interval + 0.5, f"took {reappeared:.2f} s"
        wait_for(lambda: publisher.failing is None, 5, "the publisher to see the server back")
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    recoveries = [r for r in caplog.records if "works again" in r.getMessage()]
    assert (len(failures), len(recoveries)) == (1, 1)


def test_publisher_entering_with_refused_connections_raises(registry: RegistryClient) -> None:
    bad = [Connection("a", "tcp://x", TPSET, connection_type=0, capacity=2**70)]
    with pytest.raises(Refused), Publisher(registry, bad):
        pass


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.02)


# ------------------------------------------------------------------------------- admin API


def test_partitions_counts_live_entries(registry: RegistryClient) -> None:
    registry.publish(conns("a", "b"))
    [mine] = [p for p in registry.partitions() if p.name == registry.partition]
    assert (mine.live, mine.expired) == (2, 0)


def test_connections_follows_the_cursor_across_pages(registry: RegistryClient) -> None:
    uids = [f"u{i}" for i in range(5)]
    registry.publish(conns(*uids))
    snap = registry.connections(page_size=2)
    assert [c.uid for c in snap.connections] == uids
    assert not any(c.expired for c in snap.connections)


def test_connections_of_an_unknown_partition_raises_not_found(registry: RegistryClient) -> None:
    with pytest.raises(NotFound):
        registry.connections("no-such-partition")


def test_watch_yields_the_current_state_then_each_change(registry: RegistryClient) -> None:
    registry.publish(conns("a"))
    states = registry.watch(wait=10)
    now = next(states)
    assert [c.uid for c in now.connections] == ["a"]
    change = threading.Timer(0.3, registry.publish, [conns("a", "b")])
    change.start()
    try:
        started = time.monotonic()
        after = next(states)
        assert time.monotonic() - started < 5  # woken by the publish, not by the 10 s wait
    finally:
        change.join()
    assert after.index > now.index
    assert [c.uid for c in after.connections] == ["a", "b"]


def test_watch_of_an_unknown_partition_yields_not_held_at_once(registry: RegistryClient) -> None:
    started = time.monotonic()
    state = next(registry.watch("no-such-partition", wait=10))
    assert time.monotonic() - started < 5
    assert (state.exists, state.connections) == (False, ())


def test_readme_client_example_runs_against_a_server(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    section = (ROOT / "README.md").read_text().split("## Client and CLI")[1]
    [example] = re.findall(r"```python\n(.*?)```", section.split("\n## ")[0], re.DOTALL)
    exec(example.replace("http://127.0.0.1:5000", server.url), {})
    assert capsys.readouterr().out == "[('DRO-000-tp_to_trigger', 'tcp://192.168.1.100:1234')]\n"


def test_the_client_imports_nothing_of_the_server() -> None:
    code = "import sys, connection_flask.client; print(sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(done.stdout))
    assert not loaded & {"flask", "werkzeug", "gunicorn", "connection_flask.store"}


def test_a_watch_refused_with_429_comes_back_after_retry_after(start_server: Starter) -> None:
    server = start_server(SERVE, env={"CONNECTION_FLASK_MAX_WATCHES": "1"})
    with RegistryClient(server.url, "p", timeout=TIMEOUT) as registry:
        registry.publish(conns("a"))
        now = registry.connections().index
        holder = threading.Thread(target=registry.page, kwargs={"index": now, "wait": 0.8})
        holder.start()
        time.sleep(0.2)  # the one watch allowed is waiting
        started = time.monotonic()
        snap, _ = registry.page(index=now, wait=0.1)
        holder.join()
    assert snap.index == now
    assert time.monotonic() - started >= 1.0  # the server's Retry-After: 1
