"""Environment -> Settings: defaults, parsing, refusal of unusable values, README in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connection_flask.settings import ENVIRONMENT_VARIABLES, Settings, SettingsError, describe

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_match_the_contract() -> None:
    s = Settings.from_env({})
    assert (s.entry_ttl, s.purge_grace, s.debug_level) == (10.0, 60.0, 1)
    assert s.max_body_bytes == 4 * 1024 * 1024
    assert (s.bind, s.workers, s.worker_class) == ("0.0.0.0:5000", 1, "gevent")


def test_values_are_read_from_the_environment() -> None:
    s = Settings.from_env(
        {"ENTRY_TTL": "2.5", "CONNECTION_FLASK_DEBUG": "3", "CONNECTION_FLASK_THREADS": " 8 "}
    )
    assert (s.entry_ttl, s.debug_level, s.threads) == (2.5, 3, 8)


def test_empty_values_mean_default() -> None:
    assert Settings.from_env({"ENTRY_TTL": ""}).entry_ttl == 10.0


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ENTRY_TTL": "ten"}, "ENTRY_TTL must be a number"),
        ({"ENTRY_TTL": "0"}, "ENTRY_TTL must be > 0"),
        ({"CONNECTION_FLASK_DEBUG": "7"}, "CONNECTION_FLASK_DEBUG must be 0..3"),
        ({"CONNECTION_FLASK_THREADS": "-1"}, "CONNECTION_FLASK_THREADS must not be negative"),
        ({"CONNECTION_FLASK_WORKER_CLASS": "eventlet"}, "CONNECTION_FLASK_WORKER_CLASS"),
    ],
)
def test_unusable_values_are_refused_with_the_variable_named(
    env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(fragment)):
        Settings.from_env(env)


def test_the_token_never_shows_in_repr() -> None:
    assert "s3cret" not in repr(Settings.from_env({"CONNECTION_FLASK_WRITE_TOKEN": "s3cret"}))


def test_readme_documents_every_setting_with_its_default() -> None:
    text = README.read_text()
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", text, re.MULTILINE)
    }
    assert set(rows) == set(ENVIRONMENT_VARIABLES)
    for spec in describe():
        assert rows[spec.env] == str(spec.default), spec.env
