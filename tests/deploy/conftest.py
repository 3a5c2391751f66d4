"""Render the Helm chart and the Kustomize trees with the real, pinned tools.

The tools are found through the HELM / KUBECTL / HADOLINT environment variables when set, else in
./bin, where `make tools` puts the pinned versions. PATH is not searched: a stray kubectl there is
a different version and would make results depend on the machine. A missing tool is a failure,
not a skip (CI installs them with `make tools`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "connection-flask"
KUSTOMIZE = ROOT / "deploy" / "kustomize"
LOCALBIN = Path(os.environ.get("LOCALBIN", ROOT / "bin"))
NAMESPACE = "connections"
SERVICE_NAME = "connection-flask"

CI_VALUES = sorted(CHART.glob("ci/*-values.yaml"))
OVERLAYS = sorted(p for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())
COMPONENTS = sorted(p for p in (KUSTOMIZE / "components").iterdir() if p.is_dir())
# Release names used when rendering each ci file: custom-names runs under a foreign release name
# to prove fullnameOverride keeps the Service name.
RELEASE_FOR = {"custom-names-values.yaml": "daq-registry"}

Doc = dict[str, Any]


def tool(name: str) -> str:
    """Absolute path of a pinned tool; fails the test (never skips) when it is absent."""
    chosen = os.environ.get(name.upper())
    path = Path(chosen) if chosen else LOCALBIN / name
    if not chosen and not path.exists():
        found = shutil.which(name, path=str(LOCALBIN))
        path = Path(found) if found else path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{name} not found at {path}: run `make tools` (or set {name.upper()}=...)")
    return str(path)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}")
    return proc


def load_all(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


@functools.cache
def _helm_template(release: str, values: tuple[str, ...], sets: tuple[str, ...]) -> str:
    args = [tool("helm"), "template", release, str(CHART), "--namespace", NAMESPACE]
    for v in values:
        args += ["-f", v]
    for s in sets:
        args += ["--set", s]
    return run(*args).stdout


def helm_template(
    values: Path | None = None, release: str = "connection-flask", sets: tuple[str, ...] = ()
) -> list[Doc]:
    """Documents rendered by `helm template` (including the helm test hook pod)."""
    vals = (str(values),) if values else ()
    return load_all(_helm_template(release, vals, sets))


def helm_template_fails(*sets: str, values: Path | None = None, flag: str = "--set") -> str:
    """Render with bad values; return helm's error text (fails the test if helm accepted them).
    flag="--set-json" passes typed values (--set makes 5.5 a string)."""
    args = [tool("helm"), "template", "connection-flask", str(CHART), "-n", NAMESPACE]
    if values:
        args += ["-f", str(values)]
    for s in sets:
        args += [flag, s]
    proc = run(*args, check=False)
    if proc.returncode == 0:
        pytest.fail(f"helm accepted {sets}: expected the chart to refuse them")
    return proc.stderr


@functools.cache
def _kustomize(path: str) -> str:
    return run(tool("kubectl"), "kustomize", path).stdout


def kustomize(path: Path) -> list[Doc]:
    return load_all(_kustomize(str(path)))


def release_for(values: Path) -> str:
    return RELEASE_FOR.get(values.name, "connection-flask")


def all_renders() -> Iterator[tuple[str, list[Doc]]]:
    """Every render under test: each chart ci file, the Kustomize base and each overlay."""
    for v in CI_VALUES:
        yield f"helm:{v.name}", helm_template(v, release_for(v))
    yield "kustomize:base", kustomize(KUSTOMIZE / "base")
    for o in OVERLAYS:
        yield f"kustomize:{o.name}", kustomize(o)


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[Doc]) -> list[tuple[str, Doc]]:
    """(label, pod spec) for every Deployment template and bare Pod (the helm test pod)."""
    out = []
    for d in docs:
        if d["kind"] == "Pod":
            out.append((f"Pod/{d['metadata']['name']}", d["spec"]))
        elif d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
    return out


def registry_deployment(docs: list[Doc]) -> Doc:
    """The service's Deployment (a render may hold others, e.g. the redis component's)."""
    found = [
        d
        for d in by_kind(docs, "Deployment")
        if any(c["name"] == "connection-flask" for c in d["spec"]["template"]["spec"]["containers"])
    ]
    assert len(found) == 1, f"expected one connection-flask Deployment, found {len(found)}"
    return found[0]


def main_container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "connection-flask")


def render_ids() -> list[str]:
    return [v.name for v in CI_VALUES] + ["base"] + [o.name for o in OVERLAYS]


@pytest.fixture(scope="session")
def renders() -> dict[str, list[Doc]]:
    return dict(all_renders())
