"""Kind mode: what we ship, installed the two ways users install it, in a real cluster.

Run with ``make test-e2e`` (it creates the cluster with ``make setup-test-e2e``, builds the image
with ``$(CONTAINER_TOOL)`` and sets E2E_KIND=1). For each install path, Helm then
``kubectl apply -k deploy/kustomize/overlays/kind``, into namespace ``connections`` labelled for
restricted Pod Security:

- wait for the Deployment to be Available (kubernetes Python client);
- the black-box suite through ``kubectl port-forward`` to Service connection-flask;
- in-cluster DNS: a restricted pod publishes and looks up at http://connection-flask.connections:5000;
- ``helm test`` (Helm path);
- a Prometheus (tests/e2e/prometheus.yaml) discovering the pod by its scrape annotations: the
  target is up and our request counter grew by the requests made;
- a rollout restart while an in-cluster client republishes every second: lookups answer again
  within two publish intervals of the new pod turning Ready;
- the NetworkPolicy: a pod it does not admit is refused, one it admits gets through, and the
  service's own pod can open no connection;
- uninstall, and nothing of ours is left running.

Before each install everything an earlier run, ``make deploy`` or ``make helm-deploy`` left in
the cluster is removed. Images are loaded from the host, so the cluster needs no registry.
On failure the report carries pod logs, events and ``kubectl describe`` of both namespaces.
Without E2E_KIND=1 every test skips, saying so; with it, anything missing (kind >= v0.24.0, a
running docker or podman, kubectl, helm, the cluster) fails the run, naming what is missing.
The decisions and command lines are in kindplan.py, tested without a cluster.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import blackbox, chart, diagnostics, incluster, kindplan
from .procs import Proc, free_port, poll

# A cluster changes slowly: probe it once a second.
_poll = functools.partial(poll, interval=1.0)

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
NAMESPACE = chart.NAMESPACE
SERVICE = "connection-flask"
SERVICE_PORT = 5000
KUSTOMIZE_OVERLAY = chart.ROOT / "deploy" / "kustomize" / "overlays" / "kind"
# The chart's values for the Helm install (the image is set on the command line).
KIND_HELM_VALUES = HERE / "kind-helm-values.yaml"
PROMETHEUS_MANIFEST = HERE / "prometheus.yaml"
DEFAULT_IMAGE = "connection-flask:dev"  # the Makefile's IMG
DEFAULT_CLUSTER = "connection-flask-e2e"  # the Makefile's KIND_CLUSTER
MONITORING_NAMESPACE = "connection-flask-e2e-monitoring"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
PUBLISH_PERIOD = 1.0
# Pod condition times have one-second resolution (truncated), so "Ready at T" means [T, T+1).
CONDITION_RESOLUTION = 1.0
ROLLOUT_TIMEOUT = 240.0


# --- prerequisites -------------------------------------------------------------------------------


def _engine_problem(engine: str) -> str | None:
    unsupported = kindplan.engine_problem(engine)
    if unsupported:
        return unsupported
    path = shutil.which(engine)
    if path is None:
        return f"container engine `{engine}` (CONTAINER_TOOL) is not on PATH"
    try:
        done = subprocess.run(
            [path, "info"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return f"container engine `{engine} info` did not answer within 30 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no running container engine: `{engine} info` failed ({last})"
    if Path(engine).name == "docker":
        done = subprocess.run(
            [path, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return kindplan.docker_version_problem(done.stdout)
    return None


def _kind_problem(kind: str) -> str | None:
    try:
        done = subprocess.run(
            [kind, "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{kind} version` failed: {exc}"
    if done.returncode != 0:
        return f"`{kind} version` failed with exit status {done.returncode}: {done.stderr.strip()}"
    return kindplan.kind_version_problem(done.stdout)


def missing_prerequisites(env: Mapping[str, str]) -> list[str]:
    """What this machine lacks for kind mode, each naming how to get it."""
    missing = []
    kind = chart.tool("kind", "KIND")
    if kind is None:
        missing.append("kind is not installed (not on PATH, KIND unset; kind >= v0.24.0 needed)")
    else:
        problem = _kind_problem(kind)
        if problem:
            missing.append(problem)
    problem = _engine_problem(env.get("CONTAINER_TOOL", "docker"))
    if problem:
        missing.append(problem)
    for name, var in (("kubectl", "KUBECTL"), ("helm", "HELM")):
        if chart.tool(name, var) is None:
            missing.append(f"{name} is not installed (run `make tools`)")
    return missing


def kind_mode(env: Mapping[str, str]) -> kindplan.Decision:
    """Run, skip or fail, and why. The cluster is asked about only when all else is there."""
    requested = env.get("E2E_KIND") == "1"
    missing = missing_prerequisites(env)
    kind = chart.tool("kind", "KIND")
    if requested and not missing and kind is not None:
        name = env.get("KIND_CLUSTER", DEFAULT_CLUSTER)
        try:
            done = subprocess.run(
                [kind, "get", "clusters"], capture_output=True, text=True, timeout=60, check=False
            )
            problem = kindplan.cluster_problem(name, done.returncode, done.stdout, done.stderr)
        except subprocess.TimeoutExpired:
            problem = "`kind get clusters` did not answer within 60 s"
        if problem:
            missing.append(problem)
    return kindplan.decide(requested, missing)


def prometheus_image() -> str:
    """The one place the in-cluster Prometheus image is named: tests/e2e/prometheus.yaml."""
    docs = [d for d in yaml.safe_load_all(PROMETHEUS_MANIFEST.read_text()) if d]
    deployment = chart.one(docs, "Deployment", "prometheus")
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


# --- the cluster ---------------------------------------------------------------------------------


def _must(name: str, var: str) -> str:
    found = chart.tool(name, var)
    assert found is not None, f"{name} vanished"
    return found


@dataclass
class Cluster:
    name: str
    kubeconfig: Path
    image: str
    engine: str
    workdir: Path
    api: Any  # kubernetes.client.ApiClient

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(self, *argv: str, timeout: float = 300, check: bool = True) -> str:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=self.env, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"$ {' '.join(argv)}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout + (done.stderr if not check else "")

    def kubectl(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return self.run(_must("kubectl", "KUBECTL"), *args, timeout=timeout, check=check)

    def helm(self, *args: str, timeout: float = 400, check: bool = True) -> str:
        return self.run(_must("helm", "HELM"), *args, timeout=timeout, check=check)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    def run_all(self, commands: Sequence[Sequence[str]], timeout: float = 600) -> None:
        for argv in commands:
            self.run(*argv, timeout=timeout)

    @property
    def loader(self) -> kindplan.Loader:
        archive = self.workdir / "image.tar"
        node_platform = kindplan.node_platform(platform.machine())
        return kindplan.Loader(
            self.engine, _must("kind", "KIND"), self.name, archive, node_platform
        )

    def load_image(self, wanted: str) -> None:
        """The image built as ``self.image``, present in the node as manifests asking for
        ``wanted`` resolve it (kindplan.load_commands)."""
        self.run_all(kindplan.load_commands(self.loader, self.image, wanted))
        self.loader.archive.unlink(missing_ok=True)

    def load_pinned(self, ref: str) -> None:
        """A repository:tag@digest image pulled on the host and loaded, so that pods asking for
        exactly ``ref`` start with no registry access (kindplan.pinned_load_commands)."""
        nodes = self.run(self.loader.kind, "get", "nodes", "--name", self.name, timeout=60)
        assert nodes.split(), f"kind cluster {self.name} has no nodes"
        self.run_all(kindplan.pinned_load_commands(self.loader, ref, nodes.split()))
        self.loader.archive.unlink(missing_ok=True)

    def clean(self, check: bool = True) -> None:
        """Remove what an earlier run, `make deploy` or `make helm-deploy` left behind."""
        commands = kindplan.cleanup_commands(
            _must("kubectl", "KUBECTL"),
            _must("helm", "HELM"),
            release=chart.RELEASE,
            namespace=NAMESPACE,
            overlay=KUSTOMIZE_OVERLAY,
            manifests=[PROMETHEUS_MANIFEST],
        )
        for argv in commands:
            self.run(*argv, timeout=300, check=check)
        wait_deleted_namespace(self, NAMESPACE)
        wait_deleted_namespace(self, MONITORING_NAMESPACE)

    def dump(self) -> str:
        """Pod logs, events and describe output of our namespaces, for a failure report."""
        out = []
        for ns in (NAMESPACE, MONITORING_NAMESPACE):
            for args in (
                ("get", "all,networkpolicy,events", "-n", ns, "-o", "wide"),
                ("describe", "deployment,pods", "-n", ns),
                (
                    "logs",
                    "-n",
                    ns,
                    "--all-containers",
                    "--prefix",
                    "--tail=200",
                    "-l",
                    "app.kubernetes.io/name",
                ),
                (
                    "logs",
                    "-n",
                    ns,
                    "--all-containers",
                    "--prefix",
                    "--tail=100",
                    "--previous",
                    "-l",
                    "app.kubernetes.io/name",
                ),
            ):
                out.append(f"$ kubectl {' '.join(args)}")
                try:
                    out.append(self.kubectl(*args, timeout=60, check=False))
                except subprocess.TimeoutExpired:
                    out.append("(timed out)")
        return "\n".join(out)


def overlay_image(c: Cluster) -> str:
    docs = [d for d in yaml.safe_load_all(c.kubectl("kustomize", str(KUSTOMIZE_OVERLAY))) if d]
    return _image_of(docs)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    verdict = kind_mode(os.environ)
    if verdict.action == "skip":
        pytest.skip(verdict.reason)
    if verdict.action == "fail":
        pytest.fail(verdict.reason, pytrace=False)
    from kubernetes import config

    name = os.environ.get("KIND_CLUSTER", DEFAULT_CLUSTER)
    kind = _must("kind", "KIND")
    workdir = tmp_path_factory.mktemp("kind")
    kubeconfig = workdir / "kubeconfig"
    done = subprocess.run(
        [kind, "get", "kubeconfig", "--name", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    kubeconfig.write_text(done.stdout)
    engine = shutil.which(os.environ.get("CONTAINER_TOOL", "docker")) or "docker"
    image = os.environ.get("IMG", DEFAULT_IMAGE)
    c = Cluster(
        name,
        kubeconfig,
        image,
        engine,
        workdir,
        config.new_client_from_config(config_file=str(kubeconfig)),  # type: ignore[no-untyped-call]
    )
    inspect = subprocess.run(
        [engine, "image", "inspect", image], capture_output=True, timeout=60, check=False
    )
    assert inspect.returncode == 0, f"image {image} is not built: run `make image IMG={image}`"
    # The Helm install asks for IMG itself, the Kustomize overlay for the name it sets.
    for wanted in dict.fromkeys([image, overlay_image(c)]):
        c.load_image(wanted)
    c.load_pinned(prometheus_image())
    with diagnostics.dump_on_failure("cluster state", c.dump):
        yield c


# --- installs ------------------------------------------------------------------------------------


def ensure_restricted_namespace(c: Cluster, name: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        c.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
        c.core.patch_namespace(name, {"metadata": {"labels": RESTRICTED}})
    labels = c.core.read_namespace(name).metadata.labels or {}
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels


def wait_deleted_namespace(c: Cluster, name: str, timeout: float = ROLLOUT_TIMEOUT) -> None:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c.core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1)
    raise AssertionError(f"namespace {name} still exists after {timeout} s")


def wait_available(c: Cluster, namespace: str, name: str, timeout: float = ROLLOUT_TIMEOUT) -> Any:
    """Poll the Deployment until rolled out and Available; returns it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        dep = c.apps.read_namespaced_deployment_status(name, namespace)
        st = dep.status
        available = any(
            cond.type == "Available" and cond.status == "True" for cond in st.conditions or []
        )
        want = dep.spec.replicas
        if (
            available
            and (st.observed_generation or 0) >= dep.metadata.generation
            and st.updated_replicas == want
            and st.ready_replicas == want
            and (st.replicas or 0) == want
        ):
            return dep
        last = st
        time.sleep(1)
    raise AssertionError(f"deployment {namespace}/{name} not Available after {timeout} s: {last}")


def _image_of(docs: list[dict[str, Any]]) -> str:
    return str(chart.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"])


def _helm_image_values(image: str) -> list[str]:
    repo, _, tag = image.rpartition(":")
    if not repo or "/" in tag:
        repo, tag = image, "latest"
    return ["--set", f"image.repository={repo}", "--set", f"image.tag={tag}"]


@dataclass
class Install:
    path: str
    target: blackbox.Target
    image: str
    write_token: str


def _target_of(c: Cluster, base_url: str) -> tuple[blackbox.Target, str, str]:
    dep = c.apps.read_namespaced_deployment(SERVICE, NAMESPACE)
    container = dep.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env or [] if e.value is not None}
    token = ""
    for e in container.env or []:
        if e.name == "CONNECTION_FLASK_WRITE_TOKEN" and e.value_from is not None:
            ref = e.value_from.secret_key_ref
            import base64

            secret = c.core.read_namespaced_secret(ref.name, NAMESPACE)
            token = base64.b64decode(secret.data[ref.key]).decode()
    token = env.get("CONNECTION_FLASK_WRITE_TOKEN", token)
    target = blackbox.Target(
        base_url=base_url,
        entry_ttl=float(env["ENTRY_TTL"]) if "ENTRY_TTL" in env else None,
        write_token=token,
        max_body_bytes=int(env.get("CONNECTION_FLASK_MAX_BODY_BYTES", 4 * 1024 * 1024)),
        label="kind",
    )
    return target, str(container.image), token


@pytest.fixture(scope="module", params=["helm", "kustomize"])
def installed(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Install]:
    c = cluster
    path = str(request.param)
    c.clean()
    ensure_restricted_namespace(c, NAMESPACE)
    if path == "helm":
        c.helm(
            "upgrade",
            "--install",
            chart.RELEASE,
            str(chart.CHART),
            "--namespace",
            NAMESPACE,
            "--values",
            str(KIND_HELM_VALUES),
            *_helm_image_values(c.image),
            "--wait",
            "--timeout",
            "4m",
        )
    else:
        c.kubectl("apply", "-k", str(KUSTOMIZE_OVERLAY))
    try:
        wait_available(c, NAMESPACE, SERVICE)
        ns_labels = c.core.read_namespace(NAMESPACE).metadata.labels or {}
        assert ns_labels.get("pod-security.kubernetes.io/enforce") == "restricted", ns_labels
        local = free_port()
        forward = Proc(
            "port-forward",
            [
                _must("kubectl", "KUBECTL"),
                "port-forward",
                "-n",
                NAMESPACE,
                f"svc/{SERVICE}",
                f"{local}:{SERVICE_PORT}",
                "--address",
                "127.0.0.1",
            ],
            c.workdir / f"port-forward-{path}.log",
            env=c.env,
        )
        with diagnostics.dump_on_failure("port-forward", forward.output):
            try:
                target, image, token = _target_of(c, f"http://127.0.0.1:{local}")
                blackbox.wait_until_ready(target, 60, forward.alive)
                yield Install(path, target, image, token)
            finally:
                forward.stop(grace=5)
    finally:
        # Uninstalled, the kept `helm test` pod and the e2e pods included; the next phase (or
        # run) cleans again before it installs, so a failure here is only reported there.
        c.clean(check=False)


# --- pods the tests run in the cluster -----------------------------------------------------------


# Labels of the e2e client pods; the Helm install's NetworkPolicy admits these (and a pod
# without them is refused: test_network_policy).
CLIENT_LABELS = {"app.kubernetes.io/component": "e2e-client"}
STRANGER_LABELS = {"app.kubernetes.io/component": "e2e-stranger"}


def restricted_pod(
    name: str,
    image: str,
    script: str,
    env: dict[str, str],
    *,
    args: Sequence[str] = (),
    labels: Mapping[str, str] = CLIENT_LABELS,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", script, *args],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "500m", "memory": "64Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
        },
    }


def wait_pod_phase(c: Cluster, name: str, phases: set[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    phase = "?"
    while time.monotonic() < deadline:
        phase = c.core.read_namespaced_pod(name, NAMESPACE).status.phase
        if phase in phases:
            return str(phase)
        time.sleep(1)
    raise AssertionError(f"pod {name} still {phase} after {timeout} s (want {phases})")


def delete_pod(c: Cluster, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        c.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != 404:
            raise


def run_pod(c: Cluster, pod: dict[str, Any]) -> tuple[str, str]:
    """Create the pod, wait until it ends, delete it: (phase, logs)."""
    name = pod["metadata"]["name"]
    c.core.create_namespaced_pod(NAMESPACE, pod)
    try:
        phase = wait_pod_phase(c, name, {"Succeeded", "Failed"})
        return phase, str(c.core.read_namespaced_pod_log(name, NAMESPACE))
    finally:
        delete_pod(c, name)


def in_cluster_env(install: Install) -> dict[str, str]:
    env = {"BASE_URL": f"http://{SERVICE}.{NAMESPACE}:{SERVICE_PORT}"}
    if install.write_token:
        env["WRITE_TOKEN"] = install.write_token
    return env


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("check", blackbox.CHECKS, ids=blackbox.CHECK_IDS)
def test_blackbox(installed: Install, check: Callable[[blackbox.Target], None]) -> None:
    check(installed.target)


def test_in_cluster_dns(cluster: Cluster, installed: Install) -> None:
    """A restricted pod reaches the registry by its Service DNS name and round-trips an entry."""
    name = f"e2e-dns-{installed.path}"
    pod = restricted_pod(name, installed.image, incluster.DNS_CHECK, in_cluster_env(installed))
    cluster.core.create_namespaced_pod(NAMESPACE, pod)
    try:
        phase = wait_pod_phase(cluster, name, {"Succeeded", "Failed"})
        logs = cluster.core.read_namespaced_pod_log(name, NAMESPACE)
        assert phase == "Succeeded", f"in-cluster publish/lookup failed:\n{logs}"
        steps = dict(json.loads(logs.strip().splitlines()[-1])["steps"])
        assert steps["publish"] == [200, "OK"], logs
    finally:
        delete_pod(cluster, name)


def test_helm_test_hook(cluster: Cluster, installed: Install) -> None:
    if installed.path != "helm":
        pytest.skip("`helm test` exists only for the Helm install")
    out = cluster.helm(
        "test", "connection-flask", "--namespace", NAMESPACE, "--logs", "--timeout", "3m"
    )
    assert "Phase:" in out and "Succeeded" in out, out
    assert "connection-flask helm test passed" in out, out


def _reach(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


def test_network_policy(cluster: Cluster, installed: Install) -> None:
    """The install's NetworkPolicy is enforced (kind >= v0.24.0): pods it admits reach the
    service, a pod it does not admit is refused, and the service's pod can open no connection
    while a pod the policy does not select reaches the same address."""
    c = cluster
    policy = json.loads(c.kubectl("get", "networkpolicy", SERVICE, "-n", NAMESPACE, "-o", "json"))
    template = c.apps.read_namespaced_deployment(SERVICE, NAMESPACE).spec.template
    assert kindplan.selects(policy, template.metadata.labels), policy["spec"]
    namespace_labels = c.core.read_namespace(NAMESPACE).metadata.labels or {}
    peers = {"client": CLIENT_LABELS, "stranger": STRANGER_LABELS}
    want = {
        who: kindplan.admits_ingress(
            policy,
            peer_labels=labels,
            peer_namespace_labels=namespace_labels,
            same_namespace=True,
            port=SERVICE_PORT,
            port_name="http",
        )
        for who, labels in peers.items()
    }
    if installed.path == "helm":  # kind-helm-values.yaml admits the e2e clients only
        assert want == {"client": True, "stranger": False}, want
    got = {}
    for who, labels in peers.items():
        pod = restricted_pod(
            f"e2e-reach-{who}-{installed.path}",
            installed.image,
            incluster.REACH,
            {},
            args=[f"{SERVICE}.{NAMESPACE}", str(SERVICE_PORT), "5"],
            labels=labels,
        )
        phase, logs = run_pod(c, pod)
        assert phase == "Succeeded", logs
        result = _reach(logs)
        # Resolved: the pod's own network works, so only the policy can have refused it.
        assert result.get("address"), result
        got[who] = result["reached"]
    assert got == want, f"reached {got}; the policy admits {want}"

    assert not kindplan.admits_egress(policy), policy["spec"]
    api = c.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    args = [api, "443", "5"]
    out = c.kubectl(
        "exec", "-n", NAMESPACE, f"deploy/{SERVICE}", "-c", chart.CONTAINER, "--",
        "python", "-c", incluster.REACH, *args,
    )  # fmt: skip
    assert _reach(out)["reached"] is False, f"the service's pod opened a connection: {out}"
    pod = restricted_pod(
        f"e2e-reach-api-{installed.path}", installed.image, incluster.REACH, {}, args=args
    )
    phase, logs = run_pod(c, pod)
    assert phase == "Succeeded" and _reach(logs)["reached"] is True, (
        f"a pod the policy does not select cannot reach {api}:443 either: {logs}"
    )


@pytest.fixture
def prometheus(cluster: Cluster, installed: Install) -> Iterator[str]:
    """Prometheus from tests/e2e/prometheus.yaml, reached through a port-forward."""
    manifest = str(PROMETHEUS_MANIFEST)
    cluster.kubectl("apply", "-f", manifest)
    try:
        wait_available(cluster, MONITORING_NAMESPACE, "prometheus")
        local = free_port()
        forward = Proc(
            "prometheus port-forward",
            [
                _must("kubectl", "KUBECTL"),
                "port-forward",
                "-n",
                MONITORING_NAMESPACE,
                "svc/prometheus",
                f"{local}:9090",
                "--address",
                "127.0.0.1",
            ],
            cluster.workdir / "prometheus-port-forward.log",
            env=cluster.env,
        )
        try:
            base = f"http://127.0.0.1:{local}"
            _poll("prometheus ready", 60, lambda: _prom_ready(base), bool)
            yield base
        finally:
            forward.stop(grace=5)
    finally:
        cluster.kubectl(
            "delete",
            "-f",
            manifest,
            "--ignore-not-found=true",
            "--wait=true",
            timeout=300,
            check=False,
        )


def _prom_ready(base: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as resp:
        return bool(resp.status == 200)


def _prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    import urllib.parse
    import urllib.request

    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_discovers_and_scrapes(installed: Install, prometheus: str) -> None:
    """Discovered by the pod's scrape annotations: the target is up and our counter grows."""
    ours = f'namespace="{NAMESPACE}",pod=~"{SERVICE}-.*"'
    up = _poll(
        "up == 1 for the connection-flask pod",
        180,
        lambda: _prom_query(prometheus, f"up{{{ours}}}"),
        lambda r: len(r) == 1 and r[0]["value"][1] == "1",
    )
    assert up[0]["metric"]["job"] == "kubernetes-pods", up

    expr = f'sum(connection_flask_requests_total{{{ours},endpoint!~"metrics|healthz|readyz"}})'
    client = blackbox.Client(installed.target)
    counts = client.metrics().requests()
    baseline = sum(n for (e, _, _), n in counts.items() if e not in blackbox.BACKGROUND_ENDPOINTS)
    _poll(
        "baseline in Prometheus",
        60,
        lambda: _prom_query(prometheus, expr),
        lambda r: len(r) == 1 and float(r[0]["value"][1]) == baseline,
    )
    with blackbox.background_traffic(installed.target, period=0.05) as made:
        time.sleep(6)
    want = baseline + made()
    got = _poll(
        "request counter in Prometheus",
        60,
        lambda: _prom_query(prometheus, expr),
        lambda r: len(r) == 1 and float(r[0]["value"][1]) >= want,
    )
    assert float(got[0]["value"][1]) == want, f"Prometheus counts {got}, {want} were made"
    p99 = _prom_query(
        prometheus,
        "histogram_quantile(0.99, sum by (le) (rate(connection_flask_request_duration_seconds"
        f'_bucket{{{ours},endpoint=~"publish|getconnection"}}[1m])))',
    )
    assert len(p99) == 1 and blackbox.is_number(p99[0]["value"][1]), p99


def _ready_since(pod: Any) -> dt.datetime | None:
    for cond in pod.status.conditions or []:
        if cond.type == "Ready" and cond.status == "True":
            return cond.last_transition_time  # type: ignore[no-any-return]
    return None


def test_restart_recovers_within_two_publish_intervals(
    cluster: Cluster, installed: Install
) -> None:
    """Rollout restart while a client republishes every second: after the new pod turns Ready,
    lookups answer again within two publish intervals."""
    c = cluster
    selector = f"app.kubernetes.io/name={SERVICE}"
    old = {
        p.metadata.name
        for p in c.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    }
    assert len(old) == 1, old
    name = f"e2e-republisher-{installed.path}"
    env = {**in_cluster_env(installed), "PERIOD": str(PUBLISH_PERIOD), "DURATION": "400"}
    c.core.create_namespaced_pod(
        NAMESPACE, restricted_pod(name, installed.image, incluster.REPUBLISHER, env)
    )
    try:
        wait_pod_phase(c, name, {"Running"})

        def lookups() -> list[dict[str, Any]]:
            text = c.core.read_namespaced_pod_log(name, NAMESPACE)
            rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            return [r for r in rows if r["op"] == "lookup"]

        _poll(
            "republisher sees its entry before the restart",
            60,
            lookups,
            lambda rows: any(r["ok"] for r in rows),
        )
        now = dt.datetime.now(dt.UTC).isoformat()
        c.apps.patch_namespaced_deployment(
            SERVICE,
            NAMESPACE,
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}
                    }
                }
            },
        )
        wait_available(c, NAMESPACE, SERVICE)

        def new_ready_pod() -> Any:
            pods = c.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            fresh = [p for p in pods if p.metadata.name not in old and _ready_since(p)]
            return fresh[0] if len(fresh) == 1 else None

        pod = _poll("a new Ready pod", ROLLOUT_TIMEOUT, new_ready_pod, lambda p: p is not None)
        ready_at = _ready_since(pod)
        assert ready_at is not None
        ready_ts = ready_at.timestamp()
        deadline = ready_ts + CONDITION_RESOLUTION + 2 * PUBLISH_PERIOD
        # Give the client until well past the deadline, then judge from its log.
        _poll(
            "lookups answer after the restart",
            60,
            lookups,
            lambda rows: any(r["ok"] and r["t"] >= ready_ts for r in rows),
        )
        rows = lookups()
        assert any(not r["ok"] for r in rows), "no lookup failed: the restart was not observed"
        first_ok = min(r["t"] for r in rows if r["ok"] and r["t"] >= ready_ts)
        assert first_ok <= deadline, (
            f"new pod {pod.metadata.name} Ready at {ready_at.isoformat()}, first good lookup "
            f"{first_ok - ready_ts:.2f} s later; want <= {deadline - ready_ts:.1f} s "
            f"(two publish intervals of {PUBLISH_PERIOD} s + {CONDITION_RESOLUTION} s resolution)"
        )
    finally:
        delete_pod(c, name)
