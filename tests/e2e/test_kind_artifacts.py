"""Kind mode's own files, checked without a cluster (these run here and in CI).

The Debian prometheus build has no Kubernetes service discovery, so promtool cannot load the
kind Prometheus's config; instead its relabelling is applied here, as Prometheus applies it, to
the pods the chart and the Kustomize overlay render, and must yield the chart's scrape settings.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from . import chart, incluster, test_kind

VERSION = "1.31.0"  # the pinned kind node image's Kubernetes


def _docs(path: Any) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _scrape_config() -> dict[str, Any]:
    manifest = _docs(test_kind.PROMETHEUS_MANIFEST)
    configmap = chart.one(manifest, "ConfigMap", "prometheus")
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    [job] = config["scrape_configs"]
    return dict(job)


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus relabelling (keep and replace, the actions the manifest uses)."""
    labels = dict(labels)
    for rule in rules:
        sources = [labels.get(s, "") for s in rule.get("source_labels", [])]
        value = rule.get("separator", ";").join(sources)
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"relabel action {action} not emulated here")
    return labels


def _discovered(pod_template: dict[str, Any], phase: str = "Running") -> dict[str, str]:
    """The labels kubernetes_sd_configs role=pod gives the pod's first container port."""
    port = pod_template["spec"]["containers"][0]["ports"][0]["containerPort"]
    labels = {
        "__address__": f"10.244.0.7:{port}",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": chart.NAMESPACE,
        "__meta_kubernetes_pod_name": "connection-flask-5d9c-abcde",
        "__meta_kubernetes_pod_phase": phase,
    }
    for key, value in (pod_template["metadata"].get("annotations") or {}).items():
        labels["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    return labels


def _renders() -> dict[str, list[dict[str, Any]]]:
    kubectl = chart.tool("kubectl", "KUBECTL")
    assert kubectl is not None, "kubectl not found: run `make tools`"
    done = subprocess.run(
        [kubectl, "kustomize", str(test_kind.KUSTOMIZE_OVERLAY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {
        "helm": chart.render(),
        "kustomize": [d for d in yaml.safe_load_all(done.stdout) if d],
    }


@pytest.mark.parametrize("install", ["helm", "kustomize"])
def test_kind_prometheus_scrapes_as_the_chart_says(install: str) -> None:
    docs = _renders()[install]
    spec = chart.container_spec(docs)
    want = chart.scrape_settings(spec)
    template = chart.one(docs, "Deployment")["spec"]["template"]
    job = _scrape_config()
    sd = job["kubernetes_sd_configs"]
    assert sd == [{"role": "pod", "namespaces": {"names": [chart.NAMESPACE]}}], sd

    target = relabel(_discovered(template), job["relabel_configs"])
    assert target is not None, f"the {install} pod is dropped by the relabelling"
    assert target["__address__"] == f"10.244.0.7:{want.port}", target
    assert target["__metrics_path__"] == want.path, target
    assert target["namespace"] == chart.NAMESPACE

    # Not scraped: pods without the annotation (helm test, e2e clients) and finished pods.
    bare = {"metadata": {}, "spec": template["spec"]}
    assert relabel(_discovered(bare), job["relabel_configs"]) is None
    assert relabel(_discovered(template, phase="Succeeded"), job["relabel_configs"]) is None
    # And the emulation can fail: a path annotation is obeyed.
    moved = {
        **template,
        "metadata": {
            "annotations": {
                **template["metadata"]["annotations"],
                "prometheus.io/path": "/elsewhere",
            }
        },
    }
    moved_target = relabel(_discovered(moved), job["relabel_configs"])
    assert moved_target is not None and moved_target["__metrics_path__"] == "/elsewhere"


def test_kind_manifests_are_valid_and_restricted() -> None:
    manifest = _docs(test_kind.PROMETHEUS_MANIFEST)
    pods = [
        test_kind.restricted_pod(
            "e2e-dns", "connection-flask:dev", incluster.DNS_CHECK, {"A": "1"}
        ),
        test_kind.restricted_pod(
            "e2e-reach",
            "connection-flask:dev",
            incluster.REACH,
            {},
            args=["connection-flask.connections", "5000", "5"],
            labels=test_kind.STRANGER_LABELS,
        ),
    ]
    for doc in [*manifest, *pods]:
        kubernetes_validate.validate(doc, VERSION, strict=True)
    deployment = chart.one(manifest, "Deployment", "prometheus")
    pod_specs = [deployment["spec"]["template"]["spec"], *(p["spec"] for p in pods)]
    for spec in pod_specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["readOnlyRootFilesystem"] is True
    # Pinned by tag and digest, and never pulled in the cluster (test_kindplan.py checks the
    # same reference is the one loaded).
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert re.fullmatch(
        r"docker\.io/prom/prometheus:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", container["image"]
    )
    assert container["imagePullPolicy"] == "Never"


def test_kind_node_image_is_pinned() -> None:
    config = yaml.safe_load((test_kind.HERE / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    images = [node["image"] for node in config["nodes"]]
    assert images, "kind-config.yaml names no node image"
    for image in images:
        assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", image), image


def test_in_cluster_programs_compile() -> None:
    for name in ("DNS_CHECK", "REPUBLISHER", "REACH"):
        compile(getattr(incluster, name), name, "exec")
