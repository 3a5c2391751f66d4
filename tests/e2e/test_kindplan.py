"""Kind mode's decisions and command lines (kindplan.py), checked without a cluster.

These run in `make test`, here and in CI: whether kind mode runs, skips or fails; that the image
each container engine loads is the one the manifests ask for; that the Prometheus image is pinned
by digest and loaded by that same reference; that the cleanup removes everything the kind tests
and `make deploy` create; what the NetworkPolicy of each install admits.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import chart, kindplan, test_kind

ENGINES = ("docker", "podman")
DIGEST = "sha256:" + "0123456789abcdef" * 4


# --- run, skip or fail ---------------------------------------------------------------------------


def test_not_asked_for_it_skips_saying_why() -> None:
    d = kindplan.decide(False, [])
    assert d.action == "skip"
    assert "E2E_KIND=1 is not set" in d.reason
    d = kindplan.decide(False, ["kind is not installed"])
    assert d.action == "skip"
    assert "E2E_KIND=1 is not set" in d.reason and "kind is not installed" in d.reason


def test_asked_for_it_fails_naming_what_is_missing() -> None:
    d = kindplan.decide(True, ["kind is not installed", "`kind get clusters` failed"])
    assert d.action == "fail"
    assert "kind is not installed" in d.reason and "`kind get clusters` failed" in d.reason
    assert kindplan.decide(True, []) == kindplan.Decision("run", "")


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("kind v0.24.0 go1.22.6 linux/amd64", (0, 24, 0)),
        ("kind v0.31.0 go1.25.1 darwin/arm64\n", (0, 31, 0)),
        ("kind v0.25.0-alpha+1a2b3c go1.23.0 linux/amd64", (0, 25, 0)),
        ("kind v1.0.0 go1.30 linux/amd64", (1, 0, 0)),
        ("kind v0.23.0 go1.22.2 linux/amd64", (0, 23, 0)),
        ("command not understood", None),
    ],
)
def test_kind_version_is_parsed(output: str, version: tuple[int, int, int] | None) -> None:
    assert kindplan.kind_version(output) == version


def test_kind_older_than_v0_24_is_refused_with_the_reason() -> None:
    assert kindplan.kind_version_problem("kind v0.24.0 go1.22.6 linux/amd64") is None
    assert kindplan.kind_version_problem("kind v0.29.0 go1.24.2 linux/amd64") is None
    problem = kindplan.kind_version_problem("kind v0.23.0 go1.22.2 linux/amd64")
    assert problem is not None
    assert "v0.23.0 is too old" in problem and ">= v0.24.0" in problem
    assert "NetworkPolicy" in problem
    unreadable = kindplan.kind_version_problem("garbage")
    assert unreadable is not None and "cannot read a version" in unreadable


def test_cluster_problems() -> None:
    assert kindplan.cluster_problem("c", 0, "a\nc\n", "") is None
    missing = kindplan.cluster_problem("c", 0, "a\nb\n", "")
    assert missing is not None and "does not exist" in missing
    assert "make setup-test-e2e" in missing
    failed = kindplan.cluster_problem("c", 1, "", "ERROR: failed to list clusters: boom\n")
    assert failed is not None
    assert "exit status 1" in failed and "failed to list clusters: boom" in failed


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _fake_kind(tmp: Path, version: str, clusters: str, clusters_status: int = 0) -> str:
    return _script(
        tmp / "kind",
        f'case "$1" in\n  version) echo "{version}" ;;\n'
        f'  get) printf "{clusters}"; echo "ERROR: no engine" >&2; exit {clusters_status} ;;\n'
        "esac\n",
    )


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Docker Engine 29 whose `info` works; kubectl and helm are the pinned ones."""
    engines = tmp_path / "engine"
    engines.mkdir()
    docker = _script(engines / "docker", 'case "$1" in version) echo 29.1.3 ;; esac\n')
    monkeypatch.setenv("CONTAINER_TOOL", docker)
    monkeypatch.setenv("KIND_CLUSTER", "connection-flask-e2e")
    for tool in ("kubectl", "helm"):
        found = chart.tool(tool, tool.upper())
        assert found is not None, f"{tool} not found: run `make tools`"
        monkeypatch.setenv(tool.upper(), found)
    return tmp_path


@pytest.mark.parametrize(
    "case",
    [
        # (`kind version`, `kind get clusters` output and status, action, the reason says)
        ("kind v0.24.0 go1.22.6 linux/amd64", r"connection-flask-e2e\n", 0, "run", ""),
        ("kind v0.24.0 go1.22.6 linux/amd64", r"other\n", 0, "fail", "does not exist"),
        ("kind v0.24.0 go1.22.6 linux/amd64", "", 1, "fail", "`kind get clusters` failed"),
        ("kind v0.23.0 go1.22.2 linux/amd64", r"connection-flask-e2e\n", 0, "fail", "too old"),
    ],
)
def test_asked_for_it_the_run_fails_unless_all_is_there(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[str, str, int, str, str]
) -> None:
    """test_kind.kind_mode itself, with a fake kind: E2E_KIND=1 and a failing `kind get
    clusters` or a missing cluster fail the run instead of skipping every test."""
    version, clusters, status, action, says = case
    monkeypatch.setenv("KIND", _fake_kind(fake_tools, version, clusters, status))
    monkeypatch.setenv("E2E_KIND", "1")
    d = test_kind.kind_mode(os.environ)
    assert d.action == action, d
    assert says in d.reason
    monkeypatch.delenv("E2E_KIND")
    d = test_kind.kind_mode(os.environ)
    assert d.action == "skip" and "E2E_KIND=1 is not set" in d.reason


def test_without_kind_asked_for_it_fails_not_asked_it_skips(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIND", str(fake_tools / "no-such-kind"))
    monkeypatch.setenv("E2E_KIND", "1")
    d = test_kind.kind_mode(os.environ)
    assert d.action == "fail" and "kind is not installed" in d.reason
    monkeypatch.setenv("E2E_KIND", "0")
    d = test_kind.kind_mode(os.environ)
    assert d.action == "skip" and "kind is not installed" in d.reason


def test_only_docker_and_podman_are_engines() -> None:
    assert kindplan.engine_problem("/usr/bin/docker") is None
    assert kindplan.engine_problem("podman") is None
    problem = kindplan.engine_problem("nerdctl")
    assert problem is not None and "docker or podman" in problem


# --- image names ---------------------------------------------------------------------------------


def makefile_default(variable: str) -> str:
    text = (chart.ROOT / "Makefile").read_text()
    [value] = re.findall(rf"^{variable} \?= (\S+)$", text, flags=re.MULTILINE)
    return str(value)


def test_defaults_are_the_makefiles() -> None:
    assert makefile_default("IMG") == test_kind.DEFAULT_IMAGE
    assert makefile_default("KIND_CLUSTER") == test_kind.DEFAULT_CLUSTER


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("connection-flask:dev", "docker.io/library/connection-flask:dev"),
        ("connection-flask", "docker.io/library/connection-flask:latest"),
        ("prom/prometheus:v2.55.1", "docker.io/prom/prometheus:v2.55.1"),
        ("localhost/connection-flask:dev", "localhost/connection-flask:dev"),
        ("localhost:5000/connection-flask", "localhost:5000/connection-flask:latest"),
        ("quay.io/a/b:1@" + DIGEST, "quay.io/a/b:1@" + DIGEST),
        ("quay.io/a/b@" + DIGEST, "quay.io/a/b@" + DIGEST),
    ],
)
def test_canonical_names(ref: str, full: str) -> None:
    assert kindplan.canonical(ref) == full


def test_the_kubelet_looks_a_digest_up_without_its_tag() -> None:
    assert kindplan.kubelet_name("prom/prometheus:v1@" + DIGEST) == (
        "docker.io/prom/prometheus@" + DIGEST
    )
    assert kindplan.kubelet_name("connection-flask:dev") == "docker.io/library/connection-flask:dev"


def test_podman_stores_a_short_name_under_localhost() -> None:
    image = makefile_default("IMG")
    assert kindplan.stored_name("podman", image) == "localhost/connection-flask:dev"
    assert kindplan.stored_name("docker", image) == "docker.io/library/connection-flask:dev"
    # The defect: `podman save` of the built image carries localhost/..., which is not what
    # a pod asking for connection-flask:dev (docker.io/library/...) gets.
    assert kindplan.stored_name("podman", image) != kindplan.kubelet_name(image)


def in_node(engine: str, commands: list[list[str]]) -> str:
    """The name the loaded image has in the node's containerd after ``commands``: the name the
    engine stores for the reference given to the `save` that wrote the archive `kind load
    image-archive` reads."""
    saved: dict[str, str] = {}
    for argv in commands:
        if "save" in argv[1:3]:
            assert argv[0] == engine
            saved[argv[argv.index("-o") + 1]] = argv[-1]
        if argv[1:3] == ["load", "image-archive"]:
            return kindplan.canonical(kindplan.stored_name(engine, saved[argv[3]]))
    raise AssertionError(f"nothing is loaded by {commands}")


def _deployment_image(docs: list[dict[str, Any]]) -> str:
    return str(chart.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"])


def helm_render(image: str) -> list[dict[str, Any]]:
    """The chart as the kind Helm install renders it."""
    argv = [chart.helm(), "template", chart.RELEASE, str(chart.CHART), "-n", chart.NAMESPACE]
    argv += ["--values", str(test_kind.KIND_HELM_VALUES), *test_kind._helm_image_values(image)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def overlay_render() -> list[dict[str, Any]]:
    kubectl = chart.tool("kubectl", "KUBECTL")
    assert kubectl is not None, "kubectl not found: run `make tools`"
    argv = [kubectl, "kustomize", str(test_kind.KUSTOMIZE_OVERLAY)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def loader(engine: str) -> kindplan.Loader:
    archive = Path("/tmp/image.tar")
    return kindplan.Loader(engine, "kind", "connection-flask-e2e", archive, "linux/arm64")


def test_docker_saves_only_the_nodes_platform() -> None:
    """With Docker's containerd image store a multi-platform image saved whole lacks the other
    platforms' content and fails to import (kubernetes-sigs/kind#3795)."""
    for source in ("connection-flask:dev", "other:1"):
        commands = kindplan.load_commands(loader("docker"), source, "connection-flask:dev")
        [save] = [argv for argv in commands if "save" in argv]
        assert save[:5] == ["docker", "image", "save", "--platform", "linux/arm64"], save
    assert kindplan.node_platform("x86_64") == "linux/amd64"
    assert kindplan.node_platform("aarch64") == "linux/arm64"
    assert kindplan.node_platform("arm64") == "linux/arm64"


def test_docker_older_than_28_is_refused_with_the_reason() -> None:
    assert kindplan.docker_version_problem("28.0.1\n") is None
    assert kindplan.docker_version_problem("29.1.3") is None
    old = kindplan.docker_version_problem("27.5.1")
    assert old is not None and "27.5.1 is too old" in old and ">= 28.0" in old
    unreadable = kindplan.docker_version_problem("")
    assert unreadable is not None and "cannot read" in unreadable


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("install", ["helm", "kustomize"])
def test_the_loaded_image_is_the_one_the_manifests_ask_for(engine: str, install: str) -> None:
    """What `make image` built (IMG), loaded as test_kind's cluster fixture loads it, is found
    in the node under the name the kubelet asks for, for both installs and both engines."""
    image = makefile_default("IMG")
    if install == "helm":
        asked, wanted = _deployment_image(helm_render(image)), image
    else:
        asked = wanted = _deployment_image(overlay_render())
    commands = kindplan.load_commands(loader(engine), image, wanted)
    assert commands[0][:3] == [engine, "tag", image] or "save" in commands[0][1:3]
    assert in_node(engine, commands) == kindplan.kubelet_name(asked), commands


def test_a_plain_podman_save_would_miss() -> None:
    """The load plan's check can fail: saving the built image as it is, as kind mode did."""
    image = makefile_default("IMG")
    naive = [
        ["podman", "save", "-o", "/tmp/image.tar", image],  # what kind mode ran
        ["kind", "load", "image-archive", "/tmp/image.tar", "--name", "c"],
    ]
    assert in_node("podman", naive) != kindplan.kubelet_name(image)


# --- the pinned Prometheus image -----------------------------------------------------------------


def _prometheus_container() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(test_kind.PROMETHEUS_MANIFEST.read_text()) if d]
    deployment = chart.one(docs, "Deployment", "prometheus")
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


@pytest.mark.parametrize("engine", ENGINES)
def test_prometheus_is_pinned_by_digest_and_loaded_by_that_reference(engine: str) -> None:
    container = _prometheus_container()
    ref = test_kind.prometheus_image()  # what the cluster fixture loads
    assert container["image"] == ref
    parsed = kindplan.parse(ref)
    assert parsed.tag and parsed.digest and re.fullmatch(r"sha256:[0-9a-f]{64}", parsed.digest)
    # Never pulled in the cluster: a missing load fails at once instead of reaching a registry.
    assert container["imagePullPolicy"] == "Never"

    nodes = ["connection-flask-e2e-control-plane", "connection-flask-e2e-worker"]
    commands = kindplan.pinned_load_commands(loader(engine), ref, nodes)
    # The host pulls exactly the manifest's digest; the engine checks the content against it.
    assert commands[0] == [engine, "pull", kindplan.kubelet_name(ref)]
    assert commands[0][-1].endswith("@" + parsed.digest)
    # Every node then answers to the name the kubelet looks the manifest's reference up by,
    # pointing at the image just loaded.
    loaded = in_node(engine, commands)
    aliases = [argv for argv in commands if argv[1] == "exec"]
    assert [a[2] for a in aliases] == nodes
    for alias in aliases:
        assert alias[3:9] == ["ctr", "--namespace=k8s.io", "images", "tag", "--force", loaded]
        assert alias[9] == kindplan.kubelet_name(ref)


def test_an_unpinned_image_is_refused() -> None:
    for ref in ("prom/prometheus:v2.55.1", "prom/prometheus@" + DIGEST):
        with pytest.raises(ValueError, match="repository:tag@digest"):
            kindplan.pinned_load_commands(loader("docker"), ref, ["node"])


# --- cleanup -------------------------------------------------------------------------------------

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _cleanup() -> list[list[str]]:
    return kindplan.cleanup_commands(
        "kubectl",
        "helm",
        release=chart.RELEASE,
        namespace=chart.NAMESPACE,
        overlay=test_kind.KUSTOMIZE_OVERLAY,
        manifests=[test_kind.PROMETHEUS_MANIFEST],
    )


def uncovered(commands: list[list[str]], created: list[dict[str, Any]]) -> list[str]:
    """Objects in ``created`` that none of ``commands`` deletes: not in a deleted namespace,
    and not named in a manifest or Kustomize tree deleted as such."""
    namespaces: set[str] = set()
    named: set[tuple[str, str]] = set()
    for argv in commands:
        if argv[:3] == ["kubectl", "delete", "namespace"]:
            namespaces.add(argv[3])
        elif argv[:3] in (["kubectl", "delete", "-f"], ["kubectl", "delete", "-k"]):
            if argv[2] == "-f":
                docs = [d for d in yaml.safe_load_all(Path(argv[3]).read_text()) if d]
            else:
                assert Path(argv[3]) == test_kind.KUSTOMIZE_OVERLAY
                docs = overlay_render()
            named |= {(d["kind"], d["metadata"]["name"]) for d in docs}
            namespaces |= {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    left = []
    for doc in created:
        kind, meta = doc["kind"], doc["metadata"]
        if kind == "Namespace":
            gone = meta["name"] in namespaces
        elif kind in CLUSTER_SCOPED:
            gone = (kind, meta["name"]) in named
        else:
            gone = meta.get("namespace", chart.NAMESPACE) in namespaces
        if not gone:
            left.append(f"{kind}/{meta['name']}")
    return left


def test_cleanup_removes_all_the_kind_tests_and_make_deploy_create() -> None:
    """Before each install: the Helm release, the Kustomize objects, every pod the tests
    started (the kept `helm test` pod too) and the Prometheus manifest all go."""
    commands = _cleanup()
    created = [
        *helm_render(makefile_default("IMG")),  # with the `helm test` pod
        *overlay_render(),
        *(d for d in yaml.safe_load_all(test_kind.PROMETHEUS_MANIFEST.read_text()) if d),
        test_kind.restricted_pod("e2e-dns-helm", "img", "pass", {}),
    ]
    assert uncovered(commands, created) == []
    # It can fail: a cluster-scoped object nobody deletes is reported.
    stray = {"kind": "ClusterRole", "metadata": {"name": "stray"}}
    assert uncovered(commands, [*created, stray]) == ["ClusterRole/stray"]


def test_cleanup_order_and_idempotence() -> None:
    commands = _cleanup()
    helm = [
        "helm", "uninstall", chart.RELEASE, "--namespace", chart.NAMESPACE, "--ignore-not-found",
    ]  # fmt: skip
    assert commands[0][: len(helm)] == helm, "the release goes while its namespace still exists"
    assert "--wait" in commands[0]
    for argv in commands[1:]:
        assert argv[:2] == ["kubectl", "delete"]
        assert "--ignore-not-found=true" in argv and "--wait=true" in argv, argv
    assert commands[2][:4] == ["kubectl", "delete", "namespace", chart.NAMESPACE]


# --- NetworkPolicy -------------------------------------------------------------------------------

NS_LABELS = {"kubernetes.io/metadata.name": chart.NAMESPACE}
MONITORING = {"kubernetes.io/metadata.name": test_kind.MONITORING_NAMESPACE}


def _admits(policy: dict[str, Any], labels: dict[str, str], **where: Any) -> bool:
    where.setdefault("peer_namespace_labels", NS_LABELS)
    where.setdefault("same_namespace", True)
    where.setdefault("port", 5000)
    where.setdefault("port_name", "http")
    return kindplan.admits_ingress(policy, peer_labels=labels, **where)


def test_the_helm_install_admits_the_e2e_clients_and_refuses_others() -> None:
    docs = helm_render(makefile_default("IMG"))
    policy = chart.one(docs, "NetworkPolicy")
    pod_labels = chart.one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert kindplan.selects(policy, pod_labels)
    assert _admits(policy, test_kind.CLIENT_LABELS)
    assert not _admits(policy, test_kind.STRANGER_LABELS)
    assert not _admits(policy, {})
    assert _admits(policy, chart.one(docs, "Pod")["metadata"]["labels"])  # helm test
    assert _admits(policy, {}, peer_namespace_labels=MONITORING, same_namespace=False)
    assert not _admits(
        policy, test_kind.CLIENT_LABELS, peer_namespace_labels={}, same_namespace=False
    )
    assert not _admits(policy, test_kind.CLIENT_LABELS, port=9999, port_name="other")
    assert not kindplan.admits_egress(policy)


def test_the_kind_overlay_admits_any_pod_on_http_and_no_egress() -> None:
    docs = overlay_render()
    policy = chart.one(docs, "NetworkPolicy")
    pod_labels = chart.one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert kindplan.selects(policy, pod_labels)
    assert _admits(policy, test_kind.CLIENT_LABELS)
    assert _admits(policy, test_kind.STRANGER_LABELS)
    assert not _admits(policy, test_kind.STRANGER_LABELS, port=9999, port_name="other")
    assert not kindplan.admits_egress(policy)
    assert not kindplan.selects(policy, test_kind.CLIENT_LABELS)  # the control pod is free
