"""Every rendered document against the Kubernetes OpenAPI schema (kubernetes-validate, strict)
for the oldest and newest Kubernetes the chart supports; CRD kinds against their required fields."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import CHART, LOCALBIN, Doc, render_ids, run, tool

OLDEST, NEWEST = "1.29.0", "1.37.0"
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def test_versions_agree_with_chart_kube_version() -> None:
    kube_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)\.0(-0)?", kube_version)
    assert match, f"kubeVersion {kube_version!r} is not the '>=X.Y.0-0' form the tests assume"
    assert match.group(1) == OLDEST.rsplit(".", 1)[0]
    newest_installed = kubernetes_validate.utils.major_minor(
        kubernetes_validate.utils.latest_version()
    )
    assert NEWEST.rsplit(".", 1)[0] == newest_installed, (
        "validate against the newest schema installed"
    )


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("render", render_ids())
def test_kubernetes_schema(renders: dict[str, list[Doc]], render: str, version: str) -> None:
    [key] = [k for k in renders if k.split(":", 1)[1] == render]
    docs = renders[key]
    checked = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            pytest.fail(f"{where} invalid for {version}: {err.message} at {list(err.path)}")
        checked += 1
    assert checked >= 4


def test_validator_can_fail() -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "five thousand"}], "bogusField": 1},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, NEWEST, strict=True)


def _crds(renders: dict[str, list[Doc]]) -> list[tuple[str, Doc]]:
    return [
        (k, d)
        for k, docs in renders.items()
        for d in docs
        if (d["apiVersion"], d["kind"]) in CRD_KINDS
    ]


DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def check_service_monitor(d: Doc) -> None:
    # Required by the monitoring.coreos.com/v1 CRD: spec, spec.selector; each endpoint names a
    # port (or targetPort); durations match the CRD's Duration pattern.
    spec = d["spec"]
    assert isinstance(spec["selector"], dict) and spec["selector"].get("matchLabels")
    assert spec["endpoints"], "no endpoints"
    for ep in spec["endpoints"]:
        assert set(ep) <= {
            "port",
            "path",
            "scheme",
            "interval",
            "scrapeTimeout",
            "honorLabels",
            "relabelings",
            "metricRelabelings",
            "targetPort",
            "bearerTokenSecret",
            "tlsConfig",
            "params",
            "followRedirects",
        }, ep
        assert isinstance(ep.get("port"), str)
        for dur in ("interval", "scrapeTimeout"):
            if dur in ep:
                assert DURATION.match(ep[dur]), ep[dur]
        for relabel in ep.get("metricRelabelings", []) + ep.get("relabelings", []):
            assert relabel.get("action", "replace") in {
                "replace",
                "keep",
                "drop",
                "keepequal",
                "dropequal",
                "hashmod",
                "labelmap",
                "labeldrop",
                "labelkeep",
                "lowercase",
                "uppercase",
            }
    if "namespaceSelector" in spec:
        assert isinstance(spec["namespaceSelector"].get("matchNames", []), list)


def check_prometheus_rule(d: Doc) -> None:
    groups = d["spec"]["groups"]
    assert groups
    for group in groups:
        assert group["name"]
        for rule in group["rules"]:
            # A rule has exactly one of alert/record, and an expr.
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            if "for" in rule:
                assert DURATION.match(rule["for"]), rule["for"]
            for m in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(m, {}).values()), rule.get(m)


def test_crd_objects_are_rendered_and_well_formed(renders: dict[str, list[Doc]]) -> None:
    crds = _crds(renders)
    kinds = {d["kind"] for _, d in crds}
    assert kinds == {"ServiceMonitor", "PrometheusRule"}
    for where, d in crds:
        assert d["metadata"]["name"] and d["metadata"]["namespace"], where
        if d["kind"] == "ServiceMonitor":
            check_service_monitor(d)
        else:
            check_prometheus_rule(d)


# --- the CRD schemas themselves --------------------------------------------------------------


def crd_validate(docs: list[Doc]) -> subprocess.CompletedProcess[str]:
    """Run hack/crd-validate (installed by `make tools`): the prometheus-operator CRD schemas as
    compiled by @kubernetes-models/prometheus-operator."""
    script = LOCALBIN / "crd-validate" / "validate.mjs"
    node = shutil.which("node")
    if not (script.exists() and (LOCALBIN / "crd-validate" / "node_modules").is_dir()):
        pytest.fail(f"{script} is not installed: run `make tools`")
    if node is None:
        pytest.fail("node is needed for the CRD schema check (Debian package nodejs)")
    return subprocess.run(
        [node, str(script)],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_crd_objects_match_the_prometheus_operator_crd_schemas(
    renders: dict[str, list[Doc]],
) -> None:
    docs = [d for _, d in _crds(renders)]
    proc = crd_validate(docs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == len(docs) >= 3


def test_crd_schema_check_can_fail(renders: dict[str, list[Doc]]) -> None:
    docs = {d["kind"]: copy.deepcopy(d) for _, d in _crds(renders)}
    docs["ServiceMonitor"]["spec"]["endpoints"][0]["interval"] = "every thirty seconds"
    del docs["PrometheusRule"]["spec"]["groups"][0]["name"]
    proc = crd_validate(list(docs.values()))
    assert proc.returncode == 1
    assert "INVALID ServiceMonitor" in proc.stdout and "INVALID PrometheusRule" in proc.stdout


def test_chart_installs_only_on_supported_kubernetes() -> None:
    for version in (OLDEST, NEWEST):
        run(tool("helm"), "template", "connection-flask", str(CHART), "--kube-version", version)
    too_old = run(
        tool("helm"),
        "template",
        "connection-flask",
        str(CHART),
        "--kube-version",
        "1.28.9",
        check=False,
    )
    assert too_old.returncode != 0
    assert "kubeVersion" in too_old.stderr or "incompatible" in too_old.stderr.lower()
