"""The Kustomize tree: base, each component through the overlays that pick it, each overlay."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import (
    COMPONENTS,
    KUSTOMIZE,
    NAMESPACE,
    OVERLAYS,
    SERVICE_NAME,
    by_kind,
    kustomize,
    main_container,
    one,
)

BASE = KUSTOMIZE / "base"
KIND = KUSTOMIZE / "overlays" / "kind"
PRODUCTION = KUSTOMIZE / "overlays" / "production"
CLUSTER_SCOPED = {"Namespace"}


def test_tree_has_the_expected_parts() -> None:
    assert {o.name for o in OVERLAYS} >= {"kind", "production", "redis"}
    assert {c.name for c in COMPONENTS} >= {"prometheus", "network-policy", "redis"}


@pytest.mark.parametrize("path", [BASE, *OVERLAYS], ids=lambda p: p.name)
def test_renders_service_in_namespace(path: Path) -> None:
    docs = kustomize(path)
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"].get("namespace") == NAMESPACE, (d["kind"], d["metadata"]["name"])
    ns = one(docs, "Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    svc = one(docs, "Service", SERVICE_NAME)
    [port] = svc["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 5000, "http")
    deploy = one(docs, "Deployment", SERVICE_NAME)
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert deploy["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    # Several replicas only where they share a Redis.
    assert deploy["spec"]["replicas"] == (2 if path.name == "redis" else 1)
    assert (
        deploy["spec"]["template"]["spec"]["serviceAccountName"]
        == one(docs, "ServiceAccount")["metadata"]["name"]
    )
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    # Concrete resources in every render, including the base.
    res = main_container(deploy)["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda p: p.name)
def test_every_component_is_a_component_used_by_an_overlay(component: Path) -> None:
    kz = yaml.safe_load((component / "kustomization.yaml").read_text())
    assert kz["kind"] == "Component"
    users = [
        o.name
        for o in OVERLAYS
        if f"../../components/{component.name}"
        in (yaml.safe_load((o / "kustomization.yaml").read_text()).get("components") or [])
    ]
    assert users, f"no overlay uses component {component.name}, so nothing renders it"


def test_base_has_no_optional_objects() -> None:
    kinds = sorted(d["kind"] for d in kustomize(BASE))
    assert kinds == ["Deployment", "Namespace", "Service", "ServiceAccount"]


def test_kind_overlay_uses_the_local_image() -> None:
    docs = kustomize(KIND)
    c = main_container(one(docs, "Deployment"))
    assert c["image"] == "connection-flask:dev"
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_production_overlay_adds_pdb_monitor_policy_and_resources() -> None:
    docs = kustomize(PRODUCTION)
    kinds = {d["kind"] for d in docs}
    assert {"PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"} <= kinds
    base_res = main_container(one(kustomize(BASE), "Deployment"))["resources"]
    prod = main_container(one(docs, "Deployment"))
    assert prod["resources"] != base_res
    env = {e["name"]: e for e in prod["env"]}
    assert env["CONNECTION_FLASK_DEBUG"]["value"] == "0"
    ref = env["CONNECTION_FLASK_WRITE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "connection-flask-auth"
    assert env["CONNECTION_FLASK_READ_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "read-token"
    # Merging by name must not have duplicated or lost any variable: base + the two tokens.
    base_env = main_container(one(kustomize(BASE), "Deployment"))["env"]
    assert len(prod["env"]) == len(env) == len(base_env) + 2
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget",):
        assert one(docs, kind)["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert (
        one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].items()
        <= pod_labels.items()
    )


def test_servicemonitor_points_at_the_service_port_by_name() -> None:
    docs = kustomize(PRODUCTION)
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert [e["port"] for e in sm["spec"]["endpoints"]] == [svc["spec"]["ports"][0]["name"]]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert by_kind(docs, "Service") == [svc]
