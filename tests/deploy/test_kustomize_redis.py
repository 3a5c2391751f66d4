"""The Kustomize redis component and overlay: a restricted, pinned official Redis, the registry
pointed at it with two workers and two replicas, rolling updates that keep every ready pod, and
NetworkPolicies that still let the registry reach Redis."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.deploy.conftest import (
    KUSTOMIZE,
    NAMESPACE,
    SERVICE_NAME,
    Doc,
    by_kind,
    kustomize,
    load_all,
    main_container,
    one,
    run,
    tool,
)

OVERLAY = KUSTOMIZE / "overlays" / "redis"
MULTIPROC = "/run/prometheus-multiproc"


def registry_pod(docs: list[Doc]) -> tuple[Doc, Doc, dict[str, str]]:
    """(Deployment, its connection-flask container, that container's plain env)."""
    deploy = one(docs, "Deployment", SERVICE_NAME)
    c = main_container(deploy)
    return deploy, c, {e["name"]: e.get("value") for e in c["env"]}


def test_the_registry_uses_the_redis_service_with_two_workers_and_replicas() -> None:
    docs = kustomize(OVERLAY)
    deploy, _, env = registry_pod(docs)
    assert deploy["spec"]["replicas"] == 2
    assert env["CONNECTION_FLASK_WORKERS"] == "2"
    url = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)", env["CONNECTION_FLASK_STORE"] or "")
    assert url, env["CONNECTION_FLASK_STORE"]
    svc = one(docs, "Service", url.group(1))
    assert [p["port"] for p in svc["spec"]["ports"]] == [int(url.group(2))]
    redis = one(docs, "Deployment", "redis")
    assert (
        svc["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    assert svc["metadata"]["namespace"] == NAMESPACE


def test_env_merges_by_name_without_duplicates() -> None:
    _, c, env = registry_pod(kustomize(OVERLAY))
    assert len(c["env"]) == len(env)
    _, _, base = registry_pod(kustomize(KUSTOMIZE / "base"))
    assert set(env) - set(base) <= {
        "CONNECTION_FLASK_STORE",
        "PROMETHEUS_MULTIPROC_DIR",
        "CONNECTION_FLASK_WRITE_TOKEN",
        "CONNECTION_FLASK_READ_TOKEN",
    }


def test_rolling_update_never_drops_a_ready_pod_and_pdb_keeps_one() -> None:
    docs = kustomize(OVERLAY)
    deploy, _, _ = registry_pod(docs)
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pdb = one(docs, "PodDisruptionBudget")
    assert 1 == pdb["spec"]["minAvailable"] < deploy["spec"]["replicas"]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_worker_metrics_go_to_a_memory_emptydir() -> None:
    deploy, c, env = registry_pod(kustomize(OVERLAY))
    assert env["PROMETHEUS_MULTIPROC_DIR"] == MULTIPROC
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[MULTIPROC]]["emptyDir"]["medium"] == "Memory"


def test_redis_is_the_pinned_official_image_restricted_with_a_writable_data_dir() -> None:
    redis = one(kustomize(OVERLAY), "Deployment", "redis")
    spec = redis["spec"]["template"]["spec"]
    [c] = spec["containers"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+", c["image"]), c["image"]
    assert spec["securityContext"]["runAsUser"] == c["securityContext"]["runAsUser"] == 999
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}[mounts["/data"]]
    assert c["command"] == ["redis-server"]
    args = " ".join(repr(a) for a in c["args"])
    assert "'--save' ''" in args and "'--appendonly' 'no'" in args
    assert "'--maxmemory-policy' 'noeviction'" in args
    assert c["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    assert "redis-cli ping" in " ".join(c["readinessProbe"]["exec"]["command"])


def egress_of_registry_pods(docs: list[Doc]) -> list[Doc]:
    """Every egress rule any NetworkPolicy grants the registry's pods (policies add up)."""
    labels = one(docs, "Deployment", SERVICE_NAME)["spec"]["template"]["metadata"]["labels"]
    return [
        rule
        for np in by_kind(docs, "NetworkPolicy")
        if np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        for rule in np["spec"].get("egress", [])
    ]


def test_network_policies_let_the_registry_reach_redis_and_dns_only() -> None:
    docs = kustomize(OVERLAY)
    redis_labels = one(docs, "Deployment", "redis")["spec"]["template"]["metadata"]["labels"]
    rules = egress_of_registry_pods(docs)
    assert {(p["port"], p["protocol"]) for r in rules for p in r["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
        (6379, "TCP"),
    }
    [to_redis] = [r for r in rules if r.get("to")]
    [peer] = to_redis["to"]
    assert peer["podSelector"]["matchLabels"].items() <= redis_labels.items()
    # Redis admits the registry's pods alone.
    redis_np = one(docs, "NetworkPolicy", "redis")
    [rule] = redis_np["spec"]["ingress"]
    registry = one(docs, "Deployment", SERVICE_NAME)["spec"]["template"]["metadata"]["labels"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= registry.items()
    assert redis_np["spec"]["egress"] == []


def test_the_component_works_without_the_network_policy_component(tmp_path: Path) -> None:
    tree = tmp_path / "kustomize"
    shutil.copytree(KUSTOMIZE, tree)
    overlay = tree / "overlays" / "bare-redis"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../../base]\ncomponents: [../../components/redis]\n"
    )
    docs = load_all(run(tool("kubectl"), "kustomize", str(overlay)).stdout)
    _, _, env = registry_pod(docs)
    assert env["CONNECTION_FLASK_STORE"] == "redis://redis:6379"
    assert {p["port"] for r in egress_of_registry_pods(docs) for p in r["ports"]} == {53, 6379}
