"""docs/API.md, the contract, against the code: every route documented, every setting it names
real, every default it states the service's own, and no citation of a contract outside the repo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from connection_flask import settings
from connection_flask.app import create_app
from connection_flask.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "API.md"


def test_every_route_is_documented() -> None:
    text = API.read_text()
    app = create_app(Settings())
    routes = {r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert routes, "no routes"
    for rule in sorted(routes):
        documented = "`GET /`" in text if rule == "/" else f"{rule}`" in text
        assert documented, f"{rule} is served but docs/API.md does not name it"


def test_every_setting_named_is_one_the_service_reads() -> None:
    named = set(re.findall(r"\b(?:CONNECTION_FLASK_[A-Z_]+[A-Z]|ENTRY_TTL)\b", API.read_text()))
    assert named, "docs/API.md names no setting"
    assert named <= settings.ENVIRONMENT_VARIABLES, named - settings.ENVIRONMENT_VARIABLES


def test_the_defaults_it_states_are_the_services() -> None:
    """`SETTING` seconds (default N) / `SETTING` (default N): N must be settings.py's."""
    defaults = {s.env: s.default for s in settings.describe()}
    stated = re.findall(r"`([A-Z_]+)`[^`(]{0,40}\(default (\d+(?:\.\d+)?)\)", API.read_text())
    assert stated, "docs/API.md states no default"
    for env, value in stated:
        assert float(value) == float(defaults[env]), (
            f"{env}: docs {value}, settings.py {defaults[env]}"
        )


def test_nothing_cites_a_contract_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "README.md", "docs", "tests", "charts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # Spelled in parts so that this file does not cite it either.
    outside = "/".join(("shared", "API.md"))
    citing = [
        name
        for name in tracked
        if (ROOT / name).is_file() and outside in (ROOT / name).read_text(errors="replace")
    ]
    assert citing == [], f"cite docs/API.md instead: {citing}"
    assert "[docs/API.md](docs/API.md)" in (ROOT / "README.md").read_text()
