"""The WSGI module refuses more than one Gunicorn worker, however the count was given; the
servers themselves are started in tests/integration/test_gunicorn.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from connection_flask.wsgi import gunicorn_workers

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in a directory of its own, without GUNICORN_CMD_ARGS."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    return tmp_path


def run_as(monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", list(argv))


def test_the_count_comes_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    run_as(monkeypatch, GUNICORN, "--workers=3", "connection_flask.wsgi:app")
    assert gunicorn_workers() == 3


def test_the_count_comes_from_gunicorn_cmd_args(monkeypatch: pytest.MonkeyPatch) -> None:
    run_as(monkeypatch, GUNICORN, "connection_flask.wsgi:app")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 2")
    assert gunicorn_workers() == 2


def test_the_count_comes_from_a_config_file(
    monkeypatch: pytest.MonkeyPatch, elsewhere: Path
) -> None:
    config = elsewhere / "conf.py"
    config.write_text("workers = 4\n")
    run_as(monkeypatch, "/venv/lib/gunicorn/__main__.py", "-c", str(config), "m:app")
    assert gunicorn_workers() == 4


def test_reading_the_count_leaves_the_directory_and_import_path_as_they_were(
    monkeypatch: pytest.MonkeyPatch, elsewhere: Path
) -> None:
    other = elsewhere / "other"
    other.mkdir()
    run_as(monkeypatch, GUNICORN, "--chdir", str(other), "connection_flask.wsgi:app")
    path = list(sys.path)
    assert gunicorn_workers() == 1
    assert Path.cwd() == elsewhere
    assert sys.path == path


def test_no_count_when_the_gunicorn_command_is_not_what_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_as(monkeypatch, "/usr/bin/pytest", "--workers=3")
    assert gunicorn_workers() is None
    run_as(monkeypatch, GUNICORN, "--no-such-option")
    assert gunicorn_workers() is None
    assert os.environ.get("GUNICORN_CMD_ARGS") is None
