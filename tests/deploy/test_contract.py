"""What the manifests promise against what the service really does: probe paths exist in the app,
env vars are ones it reads, dashboards and alerts query metrics it exports, pods are restricted,
and Helm and Kustomize deploy the same container."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connection_flask import metrics as service_metrics
from connection_flask.app import create_app
from connection_flask.settings import ENVIRONMENT_VARIABLES, Settings
from tests.deploy.conftest import (
    CHART,
    CI_VALUES,
    KUSTOMIZE,
    Doc,
    helm_template,
    kustomize,
    main_container,
    one,
    pod_specs,
    registry_deployment,
    render_ids,
)

DASHBOARD = CHART / "dashboards" / "connection-flask.json"
EVERYTHING = CHART / "ci" / "all-enabled-values.yaml"
# PromQL words that are not metric names.
PROMQL_WORDS = {
    "sum",
    "rate",
    "irate",
    "increase",
    "by",
    "without",
    "max",
    "min",
    "avg",
    "count",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "histogram_quantile",
    "label_values",
    "le",
    "bool",
    "offset",
    "topk",
    "bottomk",
    "abs",
    "clamp_min",
    "vector",
    "absent",
    "time",
    "delta",
    "deriv",
    "humanizePercentage",
    "humanizeDuration",
}


@pytest.fixture(scope="module")
def app_rules() -> set[str]:
    return {rule.rule for rule in create_app(Settings()).url_map.iter_rules()}


@pytest.fixture(scope="module")
def exported_metrics() -> set[str]:
    """Sample names a real scrape of the app returns, plus the series every declared family has
    (a labelled counter may have no sample before its first increment)."""
    text = create_app(Settings()).test_client().get("/metrics").get_data(as_text=True)
    names = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    for base in service_metrics.METRIC_NAMES:
        names |= {base, f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    assert "connection_flask_requests_total" in names
    return names


def metric_names_in(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # drop label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # drop matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # drop ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # drop grouping labels
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words - PROMQL_WORDS if not w.startswith("$") and "_" in w}


# --- probes, env, security --------------------------------------------------------------------


@pytest.mark.parametrize("render", render_ids())
def test_probe_paths_exist_in_the_app(
    renders: dict[str, list[Doc]], render: str, app_rules: set[str]
) -> None:
    [docs] = [d for k, d in renders.items() if k.split(":", 1)[1] == render]
    container = main_container(registry_deployment(docs))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in app_rules, f"{probe} path {get['path']} is not a Flask route"
        assert get["port"] == "http"
    assert container["livenessProbe"]["httpGet"]["path"] in {"/healthz", "/live"}
    assert container["readinessProbe"]["httpGet"]["path"] in {"/readyz", "/ready"}


def test_probe_endpoints_answer_200(app_rules: set[str]) -> None:
    client = create_app(Settings()).test_client()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path


# Read by a library the service runs, not a setting: prometheus_client's multiprocess directory
# (the Gunicorn master prepares it, connection_flask.multiprocess).
LIBRARY_ENV = {"PROMETHEUS_MULTIPROC_DIR"}


@pytest.mark.parametrize("render", render_ids())
def test_env_vars_are_read_by_the_service(renders: dict[str, list[Doc]], render: str) -> None:
    [docs] = [d for k, d in renders.items() if k.split(":", 1)[1] == render]
    known = ENVIRONMENT_VARIABLES | LIBRARY_ENV
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            names = {e["name"] for e in c.get("env", [])} - {"BASE_URL"}  # helm test's own
            unknown = names - known
            assert not unknown, f"{where}: the service reads no {sorted(unknown)}"


def test_chart_exposes_every_service_setting() -> None:
    env = {e["name"] for e in main_container(one(helm_template(EVERYTHING), "Deployment"))["env"]}
    assert env == ENVIRONMENT_VARIABLES


def test_default_env_values_are_accepted_by_settings() -> None:
    env = {e["name"]: e["value"] for e in main_container(one(helm_template(), "Deployment"))["env"]}
    parsed = Settings.from_env(env)
    assert parsed.workers == 1
    assert parsed.worker_tmp_dir == "/tmp"
    everything = main_container(one(helm_template(EVERYTHING), "Deployment"))["env"]
    parsed = Settings.from_env({e["name"]: e["value"] for e in everything if "value" in e})
    assert parsed.entry_ttl == 2.5 and parsed.max_body_bytes == 16 * 1024 * 1024


def assert_restricted(where: str, spec: Doc) -> None:
    psc = spec.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, where
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        label = f"{where}/{c['name']}"
        assert sc.get("allowPrivilegeEscalation") is False, label
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], label
        assert not sc.get("capabilities", {}).get("add"), label
        assert sc.get("readOnlyRootFilesystem") is True, label
        assert sc.get("privileged", False) is False, label
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        assert isinstance(uid, int) and uid != 0, label
        assert sc.get("seccompProfile", psc.get("seccompProfile"))["type"] == "RuntimeDefault"
    for vol in spec.get("volumes", []):
        assert set(vol) - {"name"} <= {
            "emptyDir",
            "configMap",
            "secret",
            "projected",
            "downwardAPI",
            "persistentVolumeClaim",
            "ephemeral",
            "csi",
        }


@pytest.mark.parametrize("render", render_ids())
def test_every_pod_is_restricted(renders: dict[str, list[Doc]], render: str) -> None:
    [docs] = [d for k, d in renders.items() if k.split(":", 1)[1] == render]
    specs = pod_specs(docs)
    assert specs
    if render.endswith("values.yaml"):
        assert any(w.startswith("Pod/") for w, _ in specs), "the helm test pod must be checked too"
    for where, spec in specs:
        assert_restricted(where, spec)


def test_restricted_check_can_fail() -> None:
    spec = one(helm_template(), "Deployment")["spec"]["template"]["spec"]
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(AssertionError):
        assert_restricted("mutated", spec)


@pytest.mark.parametrize("render", render_ids())
def test_writable_tmp_for_gunicorn(renders: dict[str, list[Doc]], render: str) -> None:
    [docs] = [d for k, d in renders.items() if k.split(":", 1)[1] == render]
    spec = registry_deployment(docs)["spec"]["template"]["spec"]
    c = main_container(registry_deployment(docs))
    tmp_dir = {e["name"]: e.get("value") for e in c["env"]}["CONNECTION_FLASK_WORKER_TMP_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert tmp_dir in mounts, "the worker tmp dir must be a mounted, writable volume"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts[tmp_dir]]


@pytest.mark.parametrize("render", render_ids())
def test_termination_grace_covers_prestop_and_graceful_timeout(
    renders: dict[str, list[Doc]], render: str
) -> None:
    [docs] = [d for k, d in renders.items() if k.split(":", 1)[1] == render]
    spec = registry_deployment(docs)["spec"]["template"]["spec"]
    c = main_container(registry_deployment(docs))
    env = {e["name"]: e.get("value") for e in c["env"]}
    graceful = int(env["CONNECTION_FLASK_GRACEFUL_TIMEOUT"])
    drain = float(env["CONNECTION_FLASK_DRAIN_SECONDS"])
    pre_stop = 0
    hook = c.get("lifecycle", {}).get("preStop")
    if hook:
        [cmd] = [a for a in hook["exec"]["command"] if "sleep" in a]
        pre_stop = int(re.search(r"sleep\((\d+)\)", cmd).group(1))  # type: ignore[union-attr]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain + graceful


# --- Helm vs Kustomize ---------------------------------------------------------------------


def essentials(deployment: Doc) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    c = main_container(deployment)
    return {
        "command": c["command"],
        "args": c["args"],
        "env": c["env"],
        "ports": c["ports"],
        "probes": {p: c[p] for p in ("startupProbe", "livenessProbe", "readinessProbe")},
        "lifecycle": c.get("lifecycle"),
        "securityContext": c["securityContext"],
        "podSecurityContext": spec["securityContext"],
        "resources": c["resources"],
        "volumeMounts": c["volumeMounts"],
        "volumes": spec["volumes"],
        "terminationGracePeriodSeconds": spec["terminationGracePeriodSeconds"],
        "automountServiceAccountToken": spec["automountServiceAccountToken"],
        "strategy": deployment["spec"]["strategy"],
        "replicas": deployment["spec"]["replicas"],
        "selector": deployment["spec"]["selector"],
        "image": c["image"],
        "podAnnotations": deployment["spec"]["template"]["metadata"].get("annotations"),
    }


def test_helm_default_and_kustomize_base_deploy_the_same_container() -> None:
    helm = essentials(one(helm_template(), "Deployment"))
    kust = essentials(one(kustomize(KUSTOMIZE / "base"), "Deployment"))
    assert helm == kust


# --- dashboards and alerts ----------------------------------------------------------------


def test_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dash["panels"]:
        assert p["targets"], p["title"]
        assert {"h", "w", "x", "y"} <= set(p["gridPos"])
    variables = {v["name"] for v in dash["templating"]["list"]}
    used = set(re.findall(r"\$(\w+)", DASHBOARD.read_text())) - {"__rate_interval"}
    assert used <= variables, f"undefined dashboard variables {used - variables}"


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [
        v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)
    ]
    return exprs


def test_dashboard_queries_name_exported_metrics(exported_metrics: set[str]) -> None:
    used: set[str] = set()
    for expr in dashboard_exprs():
        names = metric_names_in(expr)
        assert names, f"no metric found in {expr!r}"
        used |= names
    assert used <= exported_metrics, (
        f"not exported by the service: {sorted(used - exported_metrics)}"
    )
    # The dashboard shows the service's own metrics, not only process ones.
    assert len({n for n in used if n.startswith("connection_flask_")}) >= 8


def test_alert_expressions_name_exported_metrics(exported_metrics: set[str]) -> None:
    rule = one(helm_template(EVERYTHING), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) >= {
        "ConnectionFlaskHighErrorRatio",
        "ConnectionFlaskHighLatencyP99",
        "ConnectionFlaskNoPublishes",
    }
    for name, r in alerts.items():
        used = metric_names_in(r["expr"])
        assert used, name
        assert used <= exported_metrics, f"{name}: {sorted(used - exported_metrics)} not exported"
        assert r["labels"]["severity"]


def test_metric_name_extraction_can_fail(exported_metrics: set[str]) -> None:
    assert metric_names_in(
        'sum by (endpoint) (rate(connection_flask_requestz_total{job="x"}[5m]))'
    ) == {"connection_flask_requestz_total"}
    assert "connection_flask_requestz_total" not in exported_metrics


def test_ci_values_exist() -> None:
    assert CI_VALUES
