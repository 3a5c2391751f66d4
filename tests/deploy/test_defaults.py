"""One set of defaults (issues 12 and 13): settings.py decides every default; the README table,
the chart's values.yaml (and what its Deployment renders), the Kustomize base and the Dockerfile
may only repeat it. Each is compared with Settings() after parsing it the way the service would,
so "10" and "10.0" are the same default but "4" threads is not "2"."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from connection_flask.settings import ENVIRONMENT_VARIABLES, Settings, SettingsError, describe
from tests.deploy.conftest import (
    CHART,
    KUSTOMIZE,
    NAMESPACE,
    ROOT,
    load_all,
    main_container,
    one,
    run,
    tool,
)
from tests.deploy.test_image import DOCKERFILE, instructions

README = ROOT / "README.md"
BASE = KUSTOMIZE / "base"
DEFAULTS = {s.env: s.default for s in describe()}
# Set by a deployment to a value other than the service's default on purpose, with that value:
# the pod's Gunicorn heartbeat goes to its own memory emptyDir at /tmp, mounted and sized there.
DELIBERATE = {"CONNECTION_FLASK_WORKER_TMP_DIR": "/tmp"}
# Only ever from a Secret, and absent by default, which is the service's default (off).
SECRET = {"CONNECTION_FLASK_WRITE_TOKEN", "CONNECTION_FLASK_READ_TOKEN"}
README_ROW = re.compile(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", re.MULTILINE)
TEMPLATE_ENV = re.compile(r"- name: ([A-Z_]+)\s*\n\s*value: \{\{\s*\.Values\.([\w.]+)")


def drift(where: str, env: Mapping[str, str], deliberate: Mapping[str, str]) -> list[str]:
    """One line for each variable in env whose value is not the service's default."""
    default = Settings()
    out = []
    for name, raw in env.items():
        if name not in DEFAULTS:
            out.append(f"{where}: {name} is not a setting of the service")
        elif name in deliberate:
            if raw != deliberate[name]:
                out.append(f"{where}: {name}={raw!r}, expected the deliberate {deliberate[name]!r}")
        elif raw.strip() == "" and not isinstance(DEFAULTS[name], str):
            # The service would fall back to its default, but as a stated default it is wrong.
            out.append(f"{where}: {name} is empty, settings.py says {DEFAULTS[name]!r}")
        else:
            try:
                same = Settings.from_env({name: raw}) == default
            except SettingsError as exc:
                out.append(f"{where}: {name}={raw!r} is refused by the service: {exc}")
                continue
            if not same:
                out.append(f"{where}: {name}={raw!r}, settings.py says {DEFAULTS[name]!r}")
    return out


def missing(where: str, env: Mapping[str, str], expected: set[str]) -> list[str]:
    return [f"{where}: no {name}" for name in sorted(expected - set(env))]


# --- each place a default is written down -------------------------------------------------------


def readme_defaults(text: str) -> dict[str, str]:
    """Variable -> default cell of the README's configuration table."""
    return {m.group(1): m.group(2) for m in README_ROW.finditer(text)}


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    """Variables given a literal value (Secret-sourced ones have none to compare)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def helm_env(chart: Path, *sets: str) -> dict[str, str]:
    """What the Deployment of `helm template` gives the container, with these --set overrides."""
    args = [tool("helm"), "template", "connection-flask", str(chart), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    return plain_env(main_container(one(load_all(run(*args).stdout), "Deployment")))


def values_paths(chart: Path) -> dict[str, str]:
    """Variable -> the values.yaml key its Deployment env entry is rendered from."""
    text = (chart / "templates" / "deployment.yaml").read_text()
    return {m.group(1): m.group(2) for m in TEMPLATE_ENV.finditer(text)}


def values_defaults(chart: Path) -> dict[str, str]:
    """Variable -> its default in values.yaml (what the chart README shows), as env text."""
    values = yaml.safe_load((chart / "values.yaml").read_text())
    out = {}
    for name, path in values_paths(chart).items():
        node: Any = values
        for part in path.split("."):
            node = node[part]
        out[name] = str(node)
    return out


def kustomize_env(base: Path) -> dict[str, str]:
    # Not conftest's cached kustomize(): the drift tests edit a tree and render it again.
    docs = load_all(run(tool("kubectl"), "kustomize", str(base)).stdout)
    return plain_env(main_container(one(docs, "Deployment")))


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """Every service variable an ENV instruction of any stage sets."""
    env: dict[str, str] = {}
    for word, rest in instructions(dockerfile):
        if word != "ENV":
            continue
        parts = shlex.split(rest)
        if all("=" in p for p in parts):
            pairs = [p.partition("=")[::2] for p in parts]
        else:  # the legacy `ENV NAME value with spaces` form
            pairs = [(parts[0], " ".join(parts[1:]))]
        env.update((k, v) for k, v in pairs if k in DEFAULTS or k.startswith("CONNECTION_FLASK_"))
    return env


def all_drift(chart: Path, base: Path, dockerfile: Path, readme: Path) -> list[str]:
    """Every disagreement with settings.py across the places defaults are written down."""
    everything = set(ENVIRONMENT_VARIABLES)
    readme_env = readme_defaults(readme.read_text())
    out = missing("README table", readme_env, everything)
    if not out and list(readme_env) != list(DEFAULTS):
        out.append("README table: rows are not in settings.describe() order")
    out += drift("README table", readme_env, {})
    paths = values_paths(chart)
    for name, value in values_defaults(chart).items():
        out += drift(f"chart values.yaml {paths[name]}", {name: value}, DELIBERATE)
    rendered = helm_env(chart)
    out += missing("helm template", rendered, everything - SECRET)
    out += drift("helm template", rendered, DELIBERATE)
    base_env = kustomize_env(base)
    out += missing("Kustomize base", base_env, everything - SECRET)
    out += drift("Kustomize base", base_env, DELIBERATE)
    out += drift("Dockerfile", dockerfile_env(dockerfile), {})
    return out


# --- the check itself ---------------------------------------------------------------------------


def test_every_default_is_the_one_in_settings() -> None:
    assert all_drift(CHART, BASE, DOCKERFILE, README) == []


def test_chart_values_map_covers_every_rendered_variable() -> None:
    # The values.yaml check sees only variables the template reads straight from .Values: one
    # rendered some other way would escape it (the rendered check would still see its value).
    assert set(values_paths(CHART)) == set(helm_env(CHART))


# --- the check can fail -------------------------------------------------------------------------


def test_values_compare_as_the_service_parses_them() -> None:
    same = {
        "ENTRY_TTL": "10",
        "CONNECTION_FLASK_HEADER_TIMEOUT": "10.0",
        "CONNECTION_FLASK_DEBUG": " 1",
    }
    assert drift("x", same, {}) == []
    assert drift("x", {"CONNECTION_FLASK_BODY_TIMEOUT": "10.5"}, {}) == [
        "x: CONNECTION_FLASK_BODY_TIMEOUT='10.5', settings.py says 10.0"
    ]
    [empty] = drift("x", {"CONNECTION_FLASK_THREADS": ""}, {})
    assert "empty" in empty
    [refused] = drift("x", {"CONNECTION_FLASK_KEEPALIVE": "0"}, {})
    assert "refused" in refused
    [unknown] = drift("x", {"CONNECTION_FLASK_THREAD": "2"}, {})
    assert "not a setting" in unknown
    assert drift("x", {"CONNECTION_FLASK_WORKER_TMP_DIR": "/tmp"}, DELIBERATE) == []
    assert drift("x", {"CONNECTION_FLASK_WORKER_TMP_DIR": "/var/tmp"}, DELIBERATE)


def test_a_chart_value_override_is_reported() -> None:
    assert drift("helm", helm_env(CHART, "gunicorn.threads=4"), DELIBERATE) == [
        "helm: CONNECTION_FLASK_THREADS='4', settings.py says 2"
    ]


# (file in the copied tree, text replaced, replacement, start of a line all_drift then reports)
EDITS = {
    "values.yaml int": (
        "chart/values.yaml",
        "  threads: 2\n",
        "  threads: 4\n",
        "chart values.yaml gunicorn.threads: CONNECTION_FLASK_THREADS='4', settings.py says 2",
    ),
    "values.yaml float renders": (
        "chart/values.yaml",
        "  sweepInterval: 1\n",
        "  sweepInterval: 1.5\n",
        "helm template: CONNECTION_FLASK_SWEEP_INTERVAL='1.5', settings.py says 1.0",
    ),
    "Kustomize value": (
        "base/deployment.yaml",
        'value: "gevent"',
        'value: "gthread"',
        "Kustomize base: CONNECTION_FLASK_WORKER_CLASS='gthread', settings.py says 'gevent'",
    ),
    "Kustomize missing": (
        "base/deployment.yaml",
        '            - name: CONNECTION_FLASK_DUMP_PAGE_SIZE\n              value: "100"\n',
        "",
        "Kustomize base: no CONNECTION_FLASK_DUMP_PAGE_SIZE",
    ),
    "Kustomize deliberate": (
        "base/deployment.yaml",
        'value: "/tmp"',
        'value: "/var/tmp"',
        "Kustomize base: CONNECTION_FLASK_WORKER_TMP_DIR='/var/tmp', expected the deliberate",
    ),
    "Dockerfile ENV": (
        "Dockerfile",
        "    PYTHONUNBUFFERED=1 \\\n",
        "    PYTHONUNBUFFERED=1 CONNECTION_FLASK_WORKER_CONNECTIONS=1000 \\\n",
        "Dockerfile: CONNECTION_FLASK_WORKER_CONNECTIONS='1000', settings.py says 10000",
    ),
    "Dockerfile legacy ENV": (
        "Dockerfile",
        "USER 10001:10001\n",
        "USER 10001:10001\nENV CONNECTION_FLASK_WORKER_CLASS sync\n",
        "Dockerfile: CONNECTION_FLASK_WORKER_CLASS='sync', settings.py says 'gevent'",
    ),
    "README default": (
        "README.md",
        "| `CONNECTION_FLASK_KEEPALIVE` | `5` |",
        "| `CONNECTION_FLASK_KEEPALIVE` | `2` |",
        "README table: CONNECTION_FLASK_KEEPALIVE='2', settings.py says 5",
    ),
    "README row missing": (
        "README.md",
        "| `CONNECTION_FLASK_HEADER_TIMEOUT` |",
        "| HEADER_TIMEOUT |",
        "README table: no CONNECTION_FLASK_HEADER_TIMEOUT",
    ),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_a_drift_in_one_place_is_reported(tmp_path: Path, edit: tuple[str, str, str, str]) -> None:
    shutil.copytree(CHART, tmp_path / "chart")
    shutil.copytree(BASE, tmp_path / "base")
    shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
    shutil.copy(README, tmp_path / "README.md")
    trees = (tmp_path / "chart", tmp_path / "base", tmp_path / "Dockerfile", tmp_path / "README.md")
    assert all_drift(*trees) == [], "the untouched copies must agree, or the edit proves nothing"
    name, old, new, reported = edit
    target = tmp_path / name
    text = target.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {name} once: update this test"
    target.write_text(text.replace(old, new))
    found = all_drift(*trees)
    assert any(line.startswith(reported) for line in found), found
