"""The Helm chart as rendered by the real helm: the container command line and scrape settings.

Local mode starts Gunicorn and configures Prometheus from what this module reads out of
``helm template``, so a change to the chart's command, environment or scrape annotations changes
what the end-to-end tests run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "connection-flask"
RELEASE = "connection-flask"
NAMESPACE = "connections"
CONTAINER = "connection-flask"


def tool(name: str, env_var: str) -> str | None:
    """A tool named by its variable (as the Makefile passes it) wins, then PATH, then ./bin."""
    named = os.environ.get(env_var)
    if named:
        return named if Path(named).is_file() else shutil.which(named)
    found = shutil.which(name)
    if found:
        return found
    local = ROOT / "bin" / name
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None


def helm() -> str:
    found = tool("helm", "HELM")
    if found is None:
        raise AssertionError(
            "helm not found (HELM, PATH or ./bin/helm): run `make tools` to install the pinned helm"
        )
    return found


def render(*set_values: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """``helm template connection-flask charts/connection-flask -n <namespace> [--set ...]``."""
    cmd = [helm(), "template", RELEASE, str(CHART), "--namespace", namespace]
    for value in set_values:
        cmd += ["--set", value]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"want one {kind} {name or ''} in the render, got {len(found)}"
    return found[0]


@dataclass(frozen=True)
class ContainerSpec:
    """The connection-flask container of the rendered Deployment."""

    command: list[str]
    env: dict[str, str]
    # containerPort by port name
    ports: dict[str, int]
    pod_annotations: dict[str, str]


def container_spec(docs: list[dict[str, Any]]) -> ContainerSpec:
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]
    containers = [c for c in pod["spec"]["containers"] if c["name"] == CONTAINER]
    assert len(containers) == 1, f"no container named {CONTAINER} in the Deployment"
    container = containers[0]
    command = list(container.get("command", [])) + list(container.get("args", []))
    assert command, "the chart's container has neither command nor args: nothing to run here"
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        assert ref is not None, f"env {item['name']}: only value and secretKeyRef are understood"
        env[item["name"]] = _secret_value(secrets, ref)
    ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports", []) if "name" in p}
    annotations = dict(pod.get("metadata", {}).get("annotations") or {})
    return ContainerSpec(command, env, ports, annotations)


def _secret_value(secrets: dict[str, dict[str, Any]], ref: dict[str, Any]) -> str:
    import base64

    secret = secrets.get(ref["name"])
    assert secret is not None, f"Secret {ref['name']} is not part of the render"
    if ref["key"] in secret.get("stringData", {}):
        return str(secret["stringData"][ref["key"]])
    return base64.b64decode(secret["data"][ref["key"]]).decode()


@dataclass(frozen=True)
class Scrape:
    """Where Prometheus scrapes the pod, as the chart's annotations say."""

    path: str
    port: int
    port_name: str | None


def scrape_settings(spec: ContainerSpec) -> Scrape:
    """prometheus.io/scrape|path|port of the pod, the port resolved via the container ports."""
    ann = spec.pod_annotations
    assert ann.get("prometheus.io/scrape") == "true", (
        f"the chart's pod is not annotated prometheus.io/scrape: 'true' (annotations: {ann})"
    )
    path = ann.get("prometheus.io/path", "/metrics")
    raw = ann.get("prometheus.io/port")
    assert raw, f"the chart's pod has no prometheus.io/port annotation (annotations: {ann})"
    if raw.isdigit():
        port = int(raw)
        names = [n for n, p in spec.ports.items() if p == port]
        assert names, f"prometheus.io/port {port} is none of the container ports {spec.ports}"
        return Scrape(path, port, names[0])
    assert raw in spec.ports, f"prometheus.io/port {raw!r} names no container port {spec.ports}"
    return Scrape(path, spec.ports[raw], raw)


def service_monitor_scrape(docs: list[dict[str, Any]], spec: ContainerSpec) -> Scrape:
    """The ServiceMonitor's endpoint, its port name resolved Service port -> container port."""
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    service = one(docs, "Service", RELEASE)
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert endpoint["port"] in by_name, f"ServiceMonitor port {endpoint['port']} not on the Service"
    target = by_name[endpoint["port"]].get("targetPort", by_name[endpoint["port"]]["port"])
    if isinstance(target, str):
        assert target in spec.ports, f"Service targetPort {target!r} names no container port"
        target = spec.ports[target]
    return Scrape(endpoint.get("path", "/metrics"), int(target), endpoint["port"])
