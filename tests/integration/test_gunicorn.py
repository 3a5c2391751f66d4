"""The ways users start the server, each for real under Gunicorn on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import README_LOOKUP, README_LOOKUP_ANSWER, README_PUBLISH
from tests.integration.conftest import BIN, ROOT, Server, free_port

pytestmark = pytest.mark.integration

OLD_FLAGS = [
    "-b",
    "127.0.0.1:{port}",
    "--workers=1",
    "--worker-class=gthread",
    "--threads=2",
    "--timeout",
    "5000000000",
    "--no-control-socket",
]


def post(url: str, body: Any) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def publish_and_look_up(server: Server) -> None:
    assert post(server.url + "/publish", README_PUBLISH) == (200, b"OK")
    assert post(server.url + "/getconnection/ccTest", README_LOOKUP) == (200, README_LOOKUP_ANSWER)


@pytest.mark.parametrize(
    "module", ["connection-service.connection-flask:app", "connectivityserver.connectionflask:app"]
)
def test_old_command_lines_serve_from_any_directory(
    start_server: Callable[..., Server], tmp_path: Path, module: str
) -> None:
    server = start_server([str(BIN / "gunicorn"), *OLD_FLAGS, module], cwd=tmp_path)
    publish_and_look_up(server)


def test_old_command_lines_work_from_a_plain_pip_install(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    env = {"PYTHONPATH": str(target)}
    for module in ("connection-service.connection-flask", "connectivityserver.connectionflask"):
        where = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import importlib; print(importlib.import_module({module!r}).__file__)",
            ],
            env={**os.environ, **env},
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert where.startswith(str(target)), f"{module} was not imported from the wheel: {where}"
    for module in (
        "connection-service.connection-flask:app",
        "connectivityserver.connectionflask:app",
    ):
        server = start_server(
            [str(BIN / "gunicorn"), *OLD_FLAGS, module],
            cwd=tmp_path,
            env=env,
        )
        publish_and_look_up(server)
        server.stop()


def test_console_script(start_server: Callable[..., Server]) -> None:
    publish_and_look_up(start_server([str(BIN / "connection-flask")]))


def test_make_run(start_server: Callable[..., Server]) -> None:
    server = start_server(["make", "-s", "-C", str(ROOT), "run"])
    publish_and_look_up(server)
    assert "Listening at: http://127.0.0.1:" in server.output()


@pytest.mark.parametrize(
    "argv",
    [
        [
            str(BIN / "gunicorn"),
            *OLD_FLAGS[:2],
            "--workers=2",
            "--no-control-socket",
            "connection-service.connection-flask:app",
        ],
        [str(BIN / "connection-flask"), "--workers", "2"],
    ],
    ids=["old-command", "console-script"],
)
def test_more_than_one_worker_is_refused_with_the_reason(
    start_server: Callable[..., Server], argv: list[str]
) -> None:
    server = start_server(argv, ready=False)
    assert server.proc.wait(timeout=30) != 0
    assert "keeps its registry in this process's memory" in server.output()


def test_more_than_one_worker_from_gunicorn_cmd_args_is_refused_too(
    start_server: Callable[..., Server],
) -> None:
    argv = [
        str(BIN / "gunicorn"),
        *OLD_FLAGS[:2],
        "--no-control-socket",
        "connection_flask.wsgi:app",
    ]
    server = start_server(argv, env={"GUNICORN_CMD_ARGS": "--workers=2"}, ready=False)
    assert server.proc.wait(timeout=30) != 0
    assert "with 2 Gunicorn workers" in server.output()


def test_raw_http_request_with_connection_close_as_the_cpp_client_sends(
    start_server: Callable[..., Server],
) -> None:
    server = start_server([str(BIN / "connection-flask")])
    for path, body in (("/publish", README_PUBLISH), ("/getconnection/ccTest", README_LOOKUP)):
        payload = json.dumps(body, separators=(",", ":")).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: connection-flask.connections:5000\r\n"
            f"Accept: */*\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, answer = b"".join(chunks).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert answer == (b"OK" if path == "/publish" else README_LOOKUP_ANSWER)


def test_port_is_free_after_stop(start_server: Callable[..., Server]) -> None:
    port = free_port()
    server = start_server([str(BIN / "connection-flask")], port=port)
    assert server.stop() == 0
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_a_client_that_sends_an_oversized_body_reads_the_413(
    start_server: Callable[..., Server],
) -> None:
    server = start_server([str(BIN / "connection-flask")])
    body = b'{"partition":"' + b"x" * (5 * 1024 * 1024) + b'"}'
    head = (
        f"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.endswith(b'CONNECTION_FLASK_MAX_BODY_BYTES (4194304 bytes)"}')


def test_timing_lines_reach_the_error_log_in_gunicorns_format_and_none_is_lost_at_exit(
    start_server: Callable[..., Server],
) -> None:
    server = start_server([str(BIN / "connection-flask")])
    publish_and_look_up(server)
    line = re.compile(
        r"^\[[-\d]+ [:\d]+ [+-]\d{4}\] \[\d+\] \[INFO\] "
        r"(publish partition=ccTest connections=\d+|lookup partition=ccTest uid_regex=\S+"
        r" found=\d+) took \d+ us$",
        re.M,
    )
    deadline = time.monotonic() + 5
    while len(line.findall(server.output())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(line.findall(server.output())) == 2, server.output()
    # Lines still waiting for the log writer when the worker exits are written on the way out.
    publish_and_look_up(server)
    assert server.stop() == 0
    output = server.log.read_text(errors="replace")
    assert len(line.findall(output)) == 4, output
