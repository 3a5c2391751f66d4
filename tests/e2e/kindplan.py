"""What kind mode decides and which commands it runs, as pure functions.

test_kind.py runs these against a real cluster; test_kindplan.py checks them here, without one:
whether to run, skip or fail; the name an image gets in each container engine and in the kind
node; the commands that load images and clean up; what a NetworkPolicy admits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# kindnetd enforces NetworkPolicy from kind v0.24.0 on; before it the overlay's policy is ignored.
MIN_KIND = (0, 24, 0)
ENGINES = ("docker", "podman")
MIN_DOCKER = (28, 0)

# --- run, skip or fail ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    action: Literal["run", "skip", "fail"]
    reason: str


def decide(requested: bool, problems: Sequence[str]) -> Decision:
    """Kind mode runs only when asked for (E2E_KIND=1). Asked for, anything missing is a failure
    naming it; not asked for, the tests skip, saying why and what else would be missing."""
    if not requested:
        reason = "kind mode runs only when asked for: E2E_KIND=1 is not set (`make test-e2e`)"
        if problems:
            reason += "; it would also need: " + "; ".join(problems)
        return Decision("skip", reason)
    if problems:
        return Decision("fail", "E2E_KIND=1 asks for the kind tests, but " + "; ".join(problems))
    return Decision("run", "")


def kind_version(output: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `kind version` ("kind v0.24.0 go1.22.6 linux/amd64")."""
    found = re.search(r"\bv(\d+)\.(\d+)\.(\d+)", output)
    if found is None:
        return None
    major, minor, patch = (int(g) for g in found.groups())
    return major, minor, patch


def kind_version_problem(output: str) -> str | None:
    version = kind_version(output)
    want = "v" + ".".join(map(str, MIN_KIND))
    if version is None:
        return f"cannot read a version from `kind version` ({output.strip()!r}); need >= {want}"
    if version < MIN_KIND:
        have = "v" + ".".join(map(str, version))
        return (
            f"kind {have} is too old: kind >= {want} is needed, the first whose kindnetd "
            "enforces NetworkPolicy (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
        )
    return None


def cluster_problem(name: str, returncode: int, stdout: str, stderr: str) -> str | None:
    """What `kind get clusters` says about the cluster ``name``: None when it exists."""
    if returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return f"`kind get clusters` failed with exit status {returncode} ({last})"
    if name not in stdout.split():
        return f"kind cluster {name!r} does not exist: run `make setup-test-e2e`"
    return None


def engine_problem(engine: str) -> str | None:
    if Path(engine).name not in ENGINES:
        return f"CONTAINER_TOOL={engine} is not supported: use docker or podman"
    return None


def docker_version_problem(server_version: str) -> str | None:
    """Docker Engine 28.0 is the first whose `docker image save` takes --platform, which
    loading into kind needs (load_commands)."""
    found = re.match(r"\s*(\d+)\.(\d+)", server_version)
    if found is None:
        return f"cannot read Docker Engine's version from {server_version.strip()!r}"
    if (int(found[1]), int(found[2])) < MIN_DOCKER:
        return (
            f"Docker Engine {server_version.strip()} is too old: kind mode needs >= "
            f"{MIN_DOCKER[0]}.{MIN_DOCKER[1]} (`docker image save --platform`)"
        )
    return None


# --- image names ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    name: str  # as written: "connection-flask", "quay.io/x/y", "localhost/z"
    tag: str | None
    digest: str | None

    @property
    def has_domain(self) -> bool:
        first, sep, _ = self.name.partition("/")
        return bool(sep) and ("." in first or ":" in first or first == "localhost")


def parse(ref: str) -> ImageRef:
    rest, _, digest = ref.partition("@")
    name, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = rest.rpartition(":")
    return ImageRef(name, tag or None, digest or None)


def _qualified(ref: ImageRef, default_domain: str) -> str:
    if ref.has_domain:
        return ref.name
    if default_domain == "docker.io" and "/" not in ref.name:
        return f"docker.io/library/{ref.name}"
    return f"{default_domain}/{ref.name}"


def _join(name: str, tag: str | None, digest: str | None) -> str:
    out = name
    if tag or not digest:
        out += ":" + (tag or "latest")
    return out + (f"@{digest}" if digest else "")


def canonical(ref: str) -> str:
    """The fully qualified name Docker's rules give ``ref``: what containerd in the kind node
    records for an archive entry of that name, and what the kubelet asks it for."""
    r = parse(ref)
    return _join(_qualified(r, "docker.io"), r.tag, r.digest)


def kubelet_name(ref: str) -> str:
    """The name containerd's CRI looks a pod's image up by: canonical, and for a reference with
    a digest, repository@digest (the tag is dropped)."""
    r = parse(ref)
    if r.digest:
        return f"{_qualified(r, 'docker.io')}@{r.digest}"
    return canonical(ref)


def stored_name(engine: str, ref: str) -> str:
    """The name ``<engine> build/tag/pull ref`` stores the image under, and `save` writes into an
    archive: Docker qualifies a short name with docker.io/library/, Podman with localhost/."""
    r = parse(ref)
    domain = "localhost" if Path(engine).name == "podman" else "docker.io"
    return _join(_qualified(r, domain), r.tag, r.digest)


@dataclass(frozen=True)
class Loader:
    """Where images go: the engine that holds them, the kind binary and cluster, the archive
    file images pass through and the platform of the kind nodes (linux/amd64, linux/arm64)."""

    engine: str
    kind: str
    cluster: str
    archive: Path
    platform: str


def node_platform(machine: str) -> str:
    """The OCI platform of kind nodes on a host whose `uname -m` is ``machine``."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine.lower(), machine.lower())
    return f"linux/{arch}"


def load_commands(to: Loader, source: str, wanted: str) -> list[list[str]]:
    """Commands that put the image the engine knows as ``source`` into the kind node under the
    name a manifest asking for ``wanted`` resolves to, through an archive and `kind load
    image-archive`.

    Docker saves one platform only (`--platform`): with its containerd image store, an image
    pulled for several platforms is saved as an index whose other platforms it lacks, and the
    node's import fails (kubernetes-sigs/kind#3795; `kind load docker-image` has no way round
    it). Podman would store and save a short ``wanted`` as localhost/...: it is tagged and saved
    under its canonical name instead."""
    engine, kind, archive = to.engine, to.kind, str(to.archive)
    load = [kind, "load", "image-archive", archive, "--name", to.cluster]
    name = Path(engine).name
    if name == "docker":
        tag = [] if canonical(source) == canonical(wanted) else [[engine, "tag", source, wanted]]
        save = [engine, "image", "save", "--platform", to.platform, "-o", archive, wanted]
        return [*tag, save, load]
    if name == "podman":
        full = canonical(wanted)
        save = [engine, "save", "--format", "docker-archive", "-o", archive, full]
        return [[engine, "tag", source, full], save, load]
    raise ValueError(engine_problem(engine))


def pinned_load_commands(to: Loader, ref: str, nodes: Sequence[str]) -> list[list[str]]:
    """Commands that put an image pinned as repository:tag@digest into the kind nodes so a pod
    asking for exactly ``ref`` starts without a registry.

    The host pulls it by digest (the engine checks the content against it), tags it and kind
    loads it by tag. A loaded archive records the tag only: kind cannot load by digest
    (kubernetes-sigs/kind#2394), and the kubelet looks a digest reference up as
    repository@digest. So that name is added in each node's containerd, pointing at the image
    just loaded."""
    r = parse(ref)
    if not (r.tag and r.digest):
        raise ValueError(f"{ref} is not pinned as repository:tag@digest")
    by_digest = kubelet_name(ref)
    by_tag = canonical(f"{r.name}:{r.tag}")
    ctr_tag = ["ctr", "--namespace=k8s.io", "images", "tag", "--force", by_tag, by_digest]
    return [
        [to.engine, "pull", by_digest],
        [to.engine, "tag", by_digest, by_tag],
        *load_commands(to, by_tag, by_tag),
        *([to.engine, "exec", node, *ctr_tag] for node in nodes),
    ]


# --- cleanup -------------------------------------------------------------------------------------


def cleanup_commands(
    kubectl: str,
    helm: str,
    *,
    release: str,
    namespace: str,
    overlay: Path,
    manifests: Sequence[Path],
) -> list[list[str]]:
    """Remove what any earlier run or `make deploy`/`make helm-deploy` left: the Helm release,
    the Kustomize overlay's objects, everything else in ``namespace`` (test pods included) and
    the objects of ``manifests``. Each step succeeds when there is nothing to remove."""
    wait = ["--ignore-not-found=true", "--wait=true", "--timeout=240s"]
    uninstall = ["uninstall", release, "--namespace", namespace, "--ignore-not-found"]
    return [
        [helm, *uninstall, "--wait", "--timeout", "240s"],
        [kubectl, "delete", "-k", str(overlay), *wait],
        [kubectl, "delete", "namespace", namespace, *wait],
        *([kubectl, "delete", "-f", str(m), *wait] for m in manifests),
    ]


# --- NetworkPolicy -------------------------------------------------------------------------------


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise ValueError(f"only matchLabels selectors are understood here: {selector}")
    return dict(selector.get("matchLabels") or {}).items() <= dict(labels).items()


def selects(policy: Mapping[str, Any], pod_labels: Mapping[str, str]) -> bool:
    """Whether the policy applies to a pod of its namespace with these labels."""
    return _selects(policy["spec"]["podSelector"], pod_labels)


def admits_ingress(
    policy: Mapping[str, Any],
    *,
    peer_labels: Mapping[str, str],
    peer_namespace_labels: Mapping[str, str],
    same_namespace: bool,
    port: int,
    port_name: str,
) -> bool:
    """Whether a pod the policy selects accepts a TCP connection on ``port`` (named
    ``port_name``) from a pod with ``peer_labels`` in a namespace with those labels."""
    spec = policy["spec"]
    if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
        return True
    for rule in spec.get("ingress") or []:
        ports = rule.get("ports") or [{}]
        if not any(
            p.get("protocol", "TCP") == "TCP" and p.get("port") in (None, port, port_name)
            for p in ports
        ):
            continue
        peers = rule.get("from") or []
        if not peers:
            return True
        for peer in peers:
            if set(peer) - {"podSelector", "namespaceSelector"}:
                raise ValueError(f"only pod and namespace selectors are understood here: {peer}")
            if "namespaceSelector" in peer:
                in_namespace = _selects(peer["namespaceSelector"], peer_namespace_labels)
            else:
                in_namespace = same_namespace
            if in_namespace and _selects(peer.get("podSelector", {}), peer_labels):
                return True
    return False


def admits_egress(policy: Mapping[str, Any]) -> bool:
    """Whether a pod the policy selects may open any connection at all."""
    spec = policy["spec"]
    if "Egress" not in spec.get("policyTypes", []):
        return True
    return bool(spec.get("egress"))
