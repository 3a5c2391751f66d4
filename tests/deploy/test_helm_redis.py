"""The chart with the Redis store: replicas and workers allowed only there, the URL only ever
from a Secret, rolling updates that keep every ready pod, the metrics directory on a memory
emptyDir, and a NetworkPolicy that still lets the pods reach Redis."""

from __future__ import annotations

import yaml

from tests.deploy.conftest import (
    CHART,
    Doc,
    by_kind,
    helm_template,
    helm_template_fails,
    main_container,
    one,
)

REDIS = CHART / "ci" / "redis-values.yaml"
INLINE = ("store.redis.url=redis://:hunter2@redis.example:6379/0",)
MULTIPROC = "/run/prometheus-multiproc"


def env_of(docs: list[Doc]) -> dict[str, dict[str, object]]:
    return {e["name"]: e for e in main_container(one(docs, "Deployment"))["env"]}


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_memory_store_refuses_a_second_replica_or_worker() -> None:
    err = helm_template_fails("replicaCount=2")
    assert "replicaCount (2) > 1 needs the Redis store" in err
    err = helm_template_fails("gunicorn.workers=2")
    assert "gunicorn.workers (2) > 1 needs the Redis store" in err


def test_a_plain_redis_url_counts_as_redis_too() -> None:
    docs = helm_template(sets=("config.store=redis://redis:6379", "replicaCount=2"))
    assert env_of(docs)["CONNECTION_FLASK_STORE"]["value"] == "redis://redis:6379"
    assert one(docs, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_a_secret_url_wins_over_config_store_with_one_variable() -> None:
    docs = helm_template(REDIS, sets=("config.store=redis://ignored:6379",))
    names = [e["name"] for e in main_container(one(docs, "Deployment"))["env"]]
    assert names.count("CONNECTION_FLASK_STORE") == 1
    assert "valueFrom" in env_of(docs)["CONNECTION_FLASK_STORE"]


def test_redis_store_allows_replicas_and_workers() -> None:
    docs = helm_template(REDIS)
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert env_of(docs)["CONNECTION_FLASK_WORKERS"]["value"] == "2"


def test_url_comes_from_the_operators_secret_and_no_chart_secret_is_made() -> None:
    docs = helm_template(REDIS)
    ref = env_of(docs)["CONNECTION_FLASK_STORE"]["valueFrom"]["secretKeyRef"]  # type: ignore[index]
    assert ref == {"name": "connection-flask-redis", "key": "url"}
    assert not by_kind(docs, "Secret")


def test_an_inline_url_goes_to_a_chart_secret_never_to_plain_env() -> None:
    docs = helm_template(sets=INLINE)
    secret = one(docs, "Secret", "connection-flask-store")
    assert secret["data"] == {"url": "cmVkaXM6Ly86aHVudGVyMkByZWRpcy5leGFtcGxlOjYzNzkvMA=="}
    ref = env_of(docs)["CONNECTION_FLASK_STORE"]["valueFrom"]["secretKeyRef"]  # type: ignore[index]
    assert ref == {"name": "connection-flask-store", "key": "url"}
    deploy = one(docs, "Deployment")
    assert "hunter2" not in yaml.safe_dump(deploy)
    # A changed URL rolls the pods, as a changed token does.
    assert "checksum/store" in deploy["spec"]["template"]["metadata"]["annotations"]


def test_memory_store_is_plain_env_and_recreates() -> None:
    docs = helm_template()
    assert env_of(docs)["CONNECTION_FLASK_STORE"] == {
        "name": "CONNECTION_FLASK_STORE",
        "value": "memory",
    }
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_redis_rolls_out_one_new_pod_before_removing_an_old_one() -> None:
    strategy = one(helm_template(REDIS), "Deployment")["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_an_explicit_strategy_wins() -> None:
    docs = helm_template(REDIS, sets=("strategy.type=Recreate",))
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_pdb_keeps_one_pod_and_lets_the_others_be_evicted() -> None:
    docs = helm_template(REDIS)
    replicas = one(docs, "Deployment")["spec"]["replicas"]
    assert 1 == one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] < replicas


def test_a_pdb_that_blocks_every_eviction_is_refused() -> None:
    err = helm_template_fails(
        "podDisruptionBudget.enabled=true", "podDisruptionBudget.minAvailable=2", values=REDIS
    )
    assert "minAvailable (2) must be below replicaCount (2)" in err


def test_several_workers_write_metrics_to_a_memory_emptydir() -> None:
    docs = helm_template(REDIS)
    assert env_of(docs)["PROMETHEUS_MULTIPROC_DIR"]["value"] == MULTIPROC
    mounts = {
        m["mountPath"]: m["name"] for m in main_container(one(docs, "Deployment"))["volumeMounts"]
    }
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes[mounts[MULTIPROC]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Mi"}


def test_one_worker_keeps_single_process_metrics() -> None:
    for docs in (helm_template(), helm_template(sets=INLINE)):
        assert "PROMETHEUS_MULTIPROC_DIR" not in env_of(docs)
        assert [v["name"] for v in pod_spec(docs)["volumes"]] == ["tmp"]


def test_network_policy_lets_the_pods_reach_redis_and_dns_only() -> None:
    dns, redis = one(helm_template(REDIS), "NetworkPolicy")["spec"]["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert redis == {"ports": [{"port": 6379, "protocol": "TCP"}]}, "any destination by default"
    peer = "networkPolicy.redisEgressTo[0].podSelector.matchLabels.app=redis"
    narrowed = helm_template(REDIS, sets=(peer, "networkPolicy.redisPort=6380"))
    _, redis = one(narrowed, "NetworkPolicy")["spec"]["egress"]
    assert redis["to"] == [{"podSelector": {"matchLabels": {"app": "redis"}}}]
    assert redis["ports"] == [{"port": 6380, "protocol": "TCP"}]
    memory = one(helm_template(sets=("networkPolicy.enabled=true",)), "NetworkPolicy")
    assert memory["spec"]["egress"] == []
