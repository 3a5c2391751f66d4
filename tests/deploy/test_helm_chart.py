"""The Helm chart: lint, render every ci values file, and check what comes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import (
    CHART,
    CI_VALUES,
    NAMESPACE,
    SERVICE_NAME,
    by_kind,
    helm_template,
    helm_template_fails,
    main_container,
    one,
    release_for,
    run,
    tool,
)

CUSTOM = CHART / "ci" / "custom-names-values.yaml"
EVERYTHING = CHART / "ci" / "all-enabled-values.yaml"
OPTIONAL_KINDS = {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy"}


def env_of(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_ci_values_cover_the_required_cases() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"default-values.yaml", "all-enabled-values.yaml", "custom-names-values.yaml"} <= names


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "none")
def test_helm_lint_strict(values: Path | None) -> None:
    args = [tool("helm"), "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    if values:
        args += ["-f", str(values)]
    out = run(*args).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_every_ci_values_file_renders_the_service_clients_expect(values: Path) -> None:
    docs = helm_template(values, release_for(values))
    svc = one(docs, "Service")
    assert svc["metadata"]["name"] == SERVICE_NAME
    assert svc["metadata"]["namespace"] == NAMESPACE
    assert svc["spec"]["type"] == "ClusterIP"
    [port] = svc["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"], port["protocol"]) == (
        "http",
        5000,
        "http",
        "TCP",
    )
    deploy = one(docs, "Deployment")
    # The Service's selector picks exactly the Deployment's pods and the Deployment selects them.
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert deploy["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert set(svc["spec"]["selector"]) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    container = main_container(deploy)
    [cport] = container["ports"]
    assert (cport["name"], cport["containerPort"]) == ("http", 5000)
    for d in docs:
        assert d["metadata"]["namespace"] in (NAMESPACE, "monitoring"), d["metadata"]["name"]


def test_default_release_name_gives_the_plain_fullname() -> None:
    docs = helm_template()
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Service", "connection-flask") in names
    assert ("Deployment", "connection-flask") in names
    assert ("ServiceAccount", "connection-flask") in names


def test_another_release_name_prefixes_unless_fullname_is_overridden() -> None:
    plain = helm_template(release="daq")
    assert one(plain, "Service")["metadata"]["name"] == "daq-connection-flask"
    pinned = helm_template(release="daq", sets=("fullnameOverride=connection-flask",))
    assert one(pinned, "Service")["metadata"]["name"] == "connection-flask"
    assert one(pinned, "Service")["spec"]["selector"]["app.kubernetes.io/instance"] == "daq"


def test_long_names_are_truncated_to_63() -> None:
    docs = helm_template(release="r" * 53)  # helm allows 53; + "-connection-flask" > 63
    for d in docs:
        assert len(d["metadata"]["name"]) <= 63
        for v in d["metadata"].get("labels", {}).values():
            assert len(str(v)) <= 63


def test_optional_objects_are_off_by_default_and_on_when_enabled() -> None:
    default_kinds = {d["kind"] for d in helm_template()}
    assert default_kinds == {"ServiceAccount", "Service", "Deployment", "Pod"}
    all_kinds = {d["kind"] for d in helm_template(EVERYTHING)}
    assert OPTIONAL_KINDS | {"ConfigMap", "Secret"} <= all_kinds


def test_selector_labels_never_carry_versions() -> None:
    for values in CI_VALUES:
        for d in helm_template(values, release_for(values)):
            selectors = []
            if d["kind"] in ("Deployment", "PodDisruptionBudget"):
                selectors.append(d["spec"]["selector"]["matchLabels"])
            if d["kind"] == "Service":
                selectors.append(d["spec"]["selector"])
            if d["kind"] in ("ServiceMonitor",):
                selectors.append(d["spec"]["selector"]["matchLabels"])
            if d["kind"] == "NetworkPolicy":
                selectors.append(d["spec"]["podSelector"]["matchLabels"])
            for sel in selectors:
                assert "helm.sh/chart" not in sel and "app.kubernetes.io/version" not in sel


def test_the_test_hook_pod_is_not_behind_the_service() -> None:
    docs = helm_template(EVERYTHING)
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    selector = one(docs, "Service")["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    # Same image as the service, talks to it through the Service DNS name.
    assert pod["spec"]["containers"][0]["image"] == main_container(one(docs, "Deployment"))["image"]
    # The check shipped in the image, pointed at the Service's DNS name.
    assert pod["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "connection_flask.selftest",
        f"http://{SERVICE_NAME}.{NAMESPACE}:5000",
    ]
    env = env_of(pod["spec"]["containers"][0])
    # With a write token the test pod sends it.
    assert env["CONNECTION_FLASK_WRITE_TOKEN"]["secretKeyRef"]["name"] == "connection-flask-auth"
    assert env["CONNECTION_FLASK_READ_TOKEN"]["secretKeyRef"]["name"] == "connection-flask-auth"


def test_image_tag_defaults_to_app_version_and_digest_wins() -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert main_container(one(helm_template(), "Deployment"))["image"] == (
        f"connection-flask:{app_version}"
    )
    image = main_container(one(helm_template(CUSTOM, "daq-registry"), "Deployment"))["image"]
    assert image.startswith("registry.example.org/dune/connection-flask@sha256:")


def test_tokens_from_a_chart_secret_or_existing_ones() -> None:
    default_env = env_of(main_container(one(helm_template(), "Deployment")))
    assert "CONNECTION_FLASK_WRITE_TOKEN" not in default_env
    assert "CONNECTION_FLASK_READ_TOKEN" not in default_env
    docs = helm_template(EVERYTHING)
    secret = one(docs, "Secret")
    env = env_of(main_container(one(docs, "Deployment")))
    name = secret["metadata"]["name"]
    assert env["CONNECTION_FLASK_WRITE_TOKEN"]["secretKeyRef"] == {
        "name": name,
        "key": "write-token",
    }
    assert env["CONNECTION_FLASK_READ_TOKEN"]["secretKeyRef"] == {"name": name, "key": "read-token"}
    assert set(secret["data"]) == {"write-token", "read-token"}
    custom = helm_template(CUSTOM, "daq-registry")
    assert not by_kind(custom, "Secret")
    env = env_of(main_container(one(custom, "Deployment")))
    assert env["CONNECTION_FLASK_WRITE_TOKEN"]["secretKeyRef"] == {
        "name": "daq-write-token",
        "key": "token",
    }
    assert env["CONNECTION_FLASK_READ_TOKEN"]["secretKeyRef"] == {
        "name": "daq-read-token",
        "key": "read-token",
    }
    # Only the read token inline: the Secret holds that key alone.
    mixed = helm_template(sets=("readToken.value=r",))
    assert set(one(mixed, "Secret")["data"]) == {"read-token"}


def test_values_reach_the_environment() -> None:
    docs = helm_template(EVERYTHING)
    env = env_of(main_container(one(docs, "Deployment")))
    assert env["ENTRY_TTL"] == "2.5"
    assert env["CONNECTION_FLASK_PURGE_GRACE"] == "30"
    assert env["CONNECTION_FLASK_DEBUG"] == "0"
    assert env["CONNECTION_FLASK_MAX_BODY_BYTES"] == "16777216"  # not 1.6777216e+07
    assert env["CONNECTION_FLASK_WORKER_CLASS"] == "gthread"
    assert env["CONNECTION_FLASK_THREADS"] == "4"
    assert env["CONNECTION_FLASK_HEADER_TIMEOUT"] == "2.5"
    assert env["CONNECTION_FLASK_SWEEP_INTERVAL"] == "0.5"
    assert env["CONNECTION_FLASK_DUMP_PAGE_SIZE"] == "50"
    assert env["CONNECTION_FLASK_GRACEFUL_TIMEOUT"] == "40"
    assert env["CONNECTION_FLASK_DRAIN_SECONDS"] == "2.5"


def test_scrape_annotations_on_by_default_and_switchable() -> None:
    ann = one(helm_template(), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ann == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "5000",
        "prometheus.io/path": "/metrics",
    }
    custom = one(helm_template(CUSTOM, "daq-registry"), "Deployment")
    assert "prometheus.io/scrape" not in (
        custom["spec"]["template"]["metadata"].get("annotations") or {}
    )


def test_service_account_token_is_not_mounted() -> None:
    for values in CI_VALUES:
        docs = helm_template(values, release_for(values))
        for sa in by_kind(docs, "ServiceAccount"):
            assert sa["automountServiceAccountToken"] is False
        spec = one(docs, "Deployment")["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] in {
            sa["metadata"]["name"] for sa in by_kind(docs, "ServiceAccount")
        }


def test_single_replica_recreate() -> None:
    spec = one(helm_template(), "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_network_policy_opens_only_the_http_port_and_admits_the_test_pod() -> None:
    docs = helm_template(EVERYTHING)
    np = one(docs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["egress"] == []
    [rule] = np["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    test_pod_labels = one(docs, "Pod")["metadata"]["labels"]
    assert any(
        "podSelector" in peer
        and peer["podSelector"]["matchLabels"].items() <= test_pod_labels.items()
        for peer in rule["from"]
    )
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_pdb_selects_the_pod() -> None:
    docs = helm_template(EVERYTHING)
    pdb = one(docs, "PodDisruptionBudget")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1


def test_grafana_configmap_carries_the_repo_dashboard() -> None:
    cm = one(helm_template(EVERYTHING), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "connection-flask.json").read_text())
    assert json.loads(cm["data"]["connection-flask.json"]) == shipped


def test_monitoring_namespace_override() -> None:
    sm = one(helm_template(CUSTOM, "daq-registry"), "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


# --- values.schema.json and template guards ------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ("config.entryTtl=soon", "entryTtl"),
        ("config.debugLevel=7", "debugLevel"),
        ("gunicorn.workers=0", "workers"),
        ("replicaCount=-1", "replicaCount"),
        ("store.redis.url=http://redis:6379", "url"),
        ("service.port=http", "port"),
        ("serviceMonitor.enabled=maybe", "enabled"),
        ("serviceMonitor.interval=30", "interval"),
        ("gunicorn.workerClass=eventlet", "workerClass"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("unknownTopLevel=1", "unknownTopLevel"),
        ("config.limits.maxUidLenght=10", "maxUidLenght"),
        # The service refuses these at start-up; the schema refuses them at render time.
        ("gunicorn.keepalive=0", "keepalive"),
        ("gunicorn.headerTimeout=0", "headerTimeout"),
        ("gunicorn.bodyTimeout=-1", "bodyTimeout"),
        ("config.sweepInterval=0", "sweepInterval"),
        ("config.dumpPageSize=0", "dumpPageSize"),
    ],
)
def test_values_schema_rejects_wrong_values(bad: str, complaint: str) -> None:
    err = helm_template_fails(bad)
    assert "schema" in err.lower() or "values don't meet" in err.lower(), err
    assert complaint in err, err


def test_schema_is_draft07_and_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    # Every key in values.yaml is described by the schema (no value escapes it).
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(vals: dict, node: dict, path: str) -> None:
        for key, val in vals.items():
            assert key in node.get("properties", {}), f"{path}{key} missing from values.schema.json"
            sub = node["properties"][key]
            if isinstance(val, dict) and sub.get("additionalProperties") is False:
                walk(val, sub, f"{path}{key}.")

    walk(values, schema, "")


def test_termination_grace_must_exceed_drain_time() -> None:
    err = helm_template_fails("terminationGracePeriodSeconds=25")  # == drain 5 + graceful 20
    assert "terminationGracePeriodSeconds" in err
    err = helm_template_fails("gunicorn.gracefulTimeout=40")
    assert "must exceed" in err
    err = helm_template_fails("lifecycle.preStopSleepSeconds=5")  # 5 + 5 + 20 == 30
    assert "preStopSleepSeconds (5)" in err
    err = helm_template_fails(
        "gunicorn.drainSeconds=9.5", flag="--set-json"
    )  # 10 + 20: fractions count
    assert "drainSeconds (10)" in err


def test_bind_port_must_match_the_container_port() -> None:
    err = helm_template_fails("gunicorn.bind=0.0.0.0:8080")
    assert "bind" in err
