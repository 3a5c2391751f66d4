"""connection-flask-ctl run as a program against a real Gunicorn server: its output read back,
its exit codes."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from connection_flask import ctl
from tests.helpers import README_PUBLISH
from tests.integration.conftest import BIN, ROOT, Server, Starter, free_port

pytestmark = pytest.mark.integration

SERVE = [str(BIN / "connection-flask")]


@pytest.fixture(scope="module")
def server(start_module_server: Starter) -> Server:
    """Shared by the tests that do not change settings; each uses its own partition."""
    return start_module_server(SERVE)


@pytest.fixture
def partition(request: pytest.FixtureRequest) -> str:
    return str(request.node.name)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


Run = Callable[..., Ran]
# What the CLI reads from the environment: no developer's shell settings leak into a test.
CTL_ENV = ("CONNECTION_FLASK_WRITE_TOKEN", "CONNECTION_FLASK_READ_TOKEN", ctl.SERVER_ENV)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """run(*args, server=, env=, stdin=): the console script's main() with these arguments, in
    this process (a new interpreter per command would triple the file's time); the tests
    marked "as a program" run it as one."""
    for name in CTL_ENV:
        monkeypatch.delenv(name, raising=False)

    def run(
        *args: str, server: str | None = None, env: dict[str, str] | None = None, stdin: str = ""
    ) -> Ran:
        argv = ["connection-flask-ctl", *(["--server", server] if server else []), *args]
        with monkeypatch.context() as m:
            m.setattr(sys, "argv", argv)
            m.setattr(sys, "stdin", io.StringIO(stdin))
            m.setattr(sys, "excepthook", sys.excepthook)  # typer installs its own: undone
            for name, value in (env or {}).items():
                m.setenv(name, value)
            capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                ctl.main()
            out, err = capsys.readouterr()
        code = exited.value.code
        return Ran(code if isinstance(code, int) else 1, out, err)

    return run


def run_program(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a shell runs it (``python -m`` stands in for the console script, which the
    shared environment does not have installed from this tree)."""
    keep = {k: v for k, v in os.environ.items() if k not in CTL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "connection_flask.ctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**keep, **env},
        check=False,
    )


def json_of(done: Ran) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def publish_one(run: Run, server: Server, partition: str, uid: str = "DRO-000") -> None:
    done = run("publish", partition, uid, "tcp://10.0.0.1:1234", "-t", "TPSet", server=server.url)
    assert done.returncode == 0, done.stderr


def test_console_script_entry_is_the_ctl_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["connection-flask-ctl"].partition(":")
    assert getattr(importlib.import_module(module), function) is ctl.main


def test_help_lists_every_exit_code_as_a_program() -> None:
    done = run_program("--help", env={})
    assert done.returncode == 0
    for code in range(5):
        assert f"\n    {code}  " in done.stdout


def test_publish_and_lookup_json_round_trip_as_a_program(server: Server, partition: str) -> None:
    env = {ctl.SERVER_ENV: server.url}
    published = run_program("publish", partition, "a", "tcp://h:1", "-t", "T", "--json", env=env)
    assert json.loads(published.stdout) == {"partition": partition, "published": 1}
    found = run_program("lookup", partition, "a", "T", "--json", env=env)
    assert json.loads(found.stdout)[0]["uri"] == "tcp://h:1"


def test_publish_then_lookup_json_parses_back(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition)
    found = json_of(run("lookup", partition, "DRO.*", "TPSet", "--json", server=server.url))
    assert found == [
        {
            "uid": "DRO-000",
            "uri": "tcp://10.0.0.1:1234",
            "data_type": "TPSet",
            "connection_type": 0,
            "capacity": 0,
        }
    ]


def test_lookup_prints_a_table_for_people(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition)
    done = run("lookup", partition, "DRO.*", "TPSet", server=server.url)
    header, row = done.stdout.splitlines()
    assert header.split() == ["UID", "URI", "DATA_TYPE", "CONNECTION_TYPE", "CAPACITY"]
    assert row.split() == ["DRO-000", "tcp://10.0.0.1:1234", "TPSet", "0", "0"]


def test_publish_reads_a_publish_body_from_stdin(run: Run, server: Server, partition: str) -> None:
    stdin = json.dumps(README_PUBLISH)  # its partition is ignored: the argument names one
    done = run("publish", partition, "--file", "-", "--json", stdin=stdin, server=server.url)
    assert json_of(done) == {"partition": partition, "published": 2}
    found = json_of(run("lookup", partition, "DRO.*", "TPSet", "--json", server=server.url))
    assert [c["uid"] for c in found] == ["DRO-000-tp_to_trigger", "DRO-001-tp_to_trigger"]


def test_lookup_matching_nothing_exits_1_with_empty_json(
    run: Run, server: Server, partition: str
) -> None:
    publish_one(run, server, partition)
    done = run("lookup", partition, "nothing", "TPSet", "--json", server=server.url)
    assert (done.returncode, json.loads(done.stdout)) == (1, [])
    assert "nothing in" in done.stderr


def test_lookup_of_an_unknown_partition_exits_1(run: Run, server: Server) -> None:
    done = run("lookup", "no-such-partition", ".*", "TPSet", server=server.url)
    assert (done.returncode, done.stdout) == (1, "")
    assert "404" in done.stderr


def test_a_bad_regex_exits_4_with_the_servers_reason(
    run: Run, server: Server, partition: str
) -> None:
    publish_one(run, server, partition)
    done = run("lookup", partition, "(unclosed", "TPSet", server=server.url)
    assert done.returncode == 4
    assert "uid_regex" in done.stderr


def test_missing_arguments_exit_2(run: Run) -> None:
    done = run("publish", "p", "uid-without-uri")
    assert done.returncode == 2
    assert "--file" in done.stderr


def test_retract_exits_0_then_1_once_gone(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition, "a")
    publish_one(run, server, partition, "b")
    assert run("retract", partition, "a", server=server.url).returncode == 0
    again = run("retract", partition, "a", "--json", server=server.url)
    assert again.returncode == 1
    assert json.loads(again.stdout) == {
        "partition": partition,
        "retracted": ["a"],
        "all_held": False,
    }


def test_retract_partition_exits_0_then_1(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition)
    assert run("retract-partition", partition, server=server.url).returncode == 0
    assert run("retract-partition", partition, server=server.url).returncode == 1


def test_health_of_a_ready_server_exits_0(run: Run, server: Server) -> None:
    assert json_of(run("health", "--json", server=server.url)) == {
        "healthz": 200,
        "readyz": 200,
        "ready": True,
    }


def test_unreachable_server_exits_3_as_a_program() -> None:
    nowhere = {ctl.SERVER_ENV: f"http://127.0.0.1:{free_port()}"}
    assert run_program("health", env=nowhere).returncode == 3
    done = run_program("--retries", "0", "lookup", "p", ".*", "TPSet", env=nowhere)
    assert done.returncode == 3
    assert "Connection refused" in done.stderr


def test_the_write_token_comes_from_the_environment(run: Run, start_server: Starter) -> None:
    server = start_server(SERVE, env={"CONNECTION_FLASK_WRITE_TOKEN": "s3cret"})
    argv = ("publish", "p", "a", "tcp://x:1", "-t", "T")
    refused = run(*argv, server=server.url)
    assert refused.returncode == 4
    assert "401" in refused.stderr
    allowed = run(*argv, server=server.url, env={"CONNECTION_FLASK_WRITE_TOKEN": "s3cret"})
    assert allowed.returncode == 0, allowed.stderr


# ------------------------------------------------------------------ admin API commands


def test_partitions_json_has_the_live_count(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition)
    listed = json_of(run("partitions", "--json", server=server.url))
    assert {"name": partition, "live": 1, "expired": 0} in listed


def test_dump_json_has_each_entry_with_its_age(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition)
    [snap] = json_of(run("dump", partition, "--json", server=server.url))
    [entry] = snap["connections"]
    assert (snap["partition"], entry["uid"], entry["expired"]) == (partition, "DRO-000", False)
    assert 0 <= entry["age_seconds"] < 60


def test_watch_prints_one_json_line_per_state(run: Run, server: Server, partition: str) -> None:
    publish_one(run, server, partition)
    done = run("watch", partition, "--count", "1", "--json", server=server.url)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    state = json.loads(line)
    assert (state["exists"], [c["uid"] for c in state["connections"]]) == (True, ["DRO-000"])
    assert state["index"] > 0
