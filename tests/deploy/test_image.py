"""The Dockerfile: hadolint clean, and in step with what the chart and Kustomize expect of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.deploy.conftest import CHART, ROOT, helm_template, main_container, one, run, tool

DOCKERFILE = ROOT / "Dockerfile"


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    proc = run(
        tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE), check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n")
    proc = run(tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(bad), check=False)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # :latest


def test_multi_stage_with_a_pinned_slim_base() -> None:
    ins = instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    [arg] = [rest for word, rest in ins if word == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    assert any(r.startswith("--from=build /opt/venv") for w, r in ins if w == "COPY")


def test_numeric_non_root_user_matches_the_pod_security_context() -> None:
    users = [rest for word, rest in instructions() if word == "USER"]
    assert users, "no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (
        int(uid)
        == values["podSecurityContext"]["runAsUser"]
        == values["securityContext"]["runAsUser"]
    )
    assert gid and int(gid) == values["podSecurityContext"]["runAsGroup"]


def test_port_and_exec_form_command_match_the_deployment() -> None:
    ins = instructions()
    assert ("EXPOSE", "5000") in ins
    [cmd] = [rest for word, rest in ins if word == "CMD"]
    argv = json.loads(cmd)  # exec form: a JSON array, no shell in between
    assert not any(w == "ENTRYPOINT" for w, _ in ins)
    c = main_container(one(helm_template(), "Deployment"))
    assert argv == c["command"] + c["args"]
    assert argv[:3] == ["gunicorn", "--config", "python:connection_flask.gunicorn_conf"]


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allowlist: ignore everything, then re-include"
    copied = {
        src
        for word, rest in instructions()
        if word == "COPY" and "--from" not in rest
        for src in rest.split()[:-1]
    }
    for src in copied:
        assert f"!{src.rstrip('/')}" in lines or f"!{src.rstrip('/')}/" in lines, src
