"""The `helm test` pod: its check (``python -m connection_flask.selftest``) run for real.

Rendering proves the pod is well formed; here its exact command runs against the service on
loopback (with read and write tokens, as the everything-enabled values configure them), only the
Service URL swapped for the loopback one, and must pass, and fail when the service does not do
what the check expects. The pod itself must run restricted and be kept for `helm test --logs`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from connection_flask.app import create_app
from connection_flask.settings import Settings
from tests.deploy.conftest import CHART, ROOT, helm_template, one

WRITE, READ = "w-token-for-tests", "r-token-for-tests"
EVERYTHING = CHART / "ci" / "all-enabled-values.yaml"


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
    app = create_app(Settings(write_token=WRITE, read_token=READ))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def check_container() -> dict[str, Any]:
    pod = one(helm_template(EVERYTHING), "Pod")
    [container] = pod["spec"]["containers"]
    return dict(container)


def run_check(base_url: str, write: str, read: str) -> subprocess.CompletedProcess[str]:
    """The pod's command with this interpreter for `python` and ``base_url`` for the Service."""
    container = check_container()
    command = container["command"]
    assert command[:3] == ["python", "-m", "connection_flask.selftest"], command
    env_names = {e["name"] for e in container["env"]}
    assert env_names == {"CONNECTION_FLASK_WRITE_TOKEN", "CONNECTION_FLASK_READ_TOKEN"}
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CONNECTION_FLASK_WRITE_TOKEN": write,
        "CONNECTION_FLASK_READ_TOKEN": read,
    }
    return subprocess.run(
        [sys.executable, *command[1:-1], base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_pod_checks_the_service_by_its_dns_name() -> None:
    assert check_container()["command"][-1] == "http://connection-flask.connections:5000"


def test_helm_test_check_passes_against_the_service(service_url: str) -> None:
    proc = run_check(service_url, WRITE, READ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [line.split(":", 1)[0] for line in proc.stdout.splitlines()]
    assert steps == [
        "GET /readyz",
        "GET /metrics",
        "metrics has connection_flask_requests_total",
        "throwaway partition",
        "publish",
        "lookup status",
        "lookup uris",
        "retract",
        "lookup after retract",
        "connection-flask helm test passed",
    ], proc.stdout


def test_helm_test_check_fails_when_writes_are_refused(service_url: str) -> None:
    proc = run_check(service_url, "wrong-token", READ)
    assert proc.returncode == 1
    assert "FAIL publish" in proc.stderr
    assert "passed" not in proc.stdout


def test_helm_test_check_cleans_up_after_a_failure(service_url: str) -> None:
    proc = run_check(service_url, WRITE, "wrong-read-token")  # publish works, lookup is refused
    assert proc.returncode == 1
    assert "FAIL lookup status" in proc.stderr
    [part] = [ln.split(": ", 1)[1] for ln in proc.stdout.splitlines() if "partition:" in ln]
    body = json.dumps({"uid_regex": ".*", "data_type": "HelmTest"}).encode()
    req = urllib.request.Request(
        f"{service_url}/getconnection/{part}",
        data=body,
        headers={"Authorization": "Bearer " + READ, "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    err.value.close()
    assert err.value.code == 404, "the throwaway partition was left behind"


def test_helm_test_check_names_an_unreachable_service() -> None:
    proc = run_check("http://127.0.0.1:9", WRITE, READ)  # discard port: nothing listens
    assert proc.returncode == 1
    assert proc.stderr.startswith("FAIL GET /readyz: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_pod_runs_restricted_on_a_read_only_root() -> None:
    for values in (None, EVERYTHING):
        pod = one(helm_template(values), "Pod")
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        [container] = spec["containers"]
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["readOnlyRootFilesystem"] is True
        assert "volumeMounts" not in container, "the check needs no writable path"


def test_the_image_ships_the_module_the_pod_runs() -> None:
    """The Dockerfile installs the package and imports the check at build time, so an image
    without it is never built."""
    module = check_container()["command"][2]
    assert (ROOT / "service" / (module.replace(".", "/") + ".py")).is_file(), module
    dockerfile = (ROOT / "Dockerfile").read_text()
    [smoke] = re.findall(r'/opt/venv/bin/python -c "import ([^"]+)"', dockerfile)
    assert module in [m.strip() for m in smoke.split(",")], smoke


def test_the_pod_outlives_its_run_so_helm_v3_can_read_its_logs() -> None:
    """Helm v3 applies the hook delete policy before `helm test --logs` reads the logs, so a
    policy that deletes the pod on success (or failure) fails every such run with "unable to get
    pod logs"; Helm v4 reads first. Deleting it only when the next run starts works under both,
    and still spares that next run a 409 on the pod's name."""
    for values in (None, EVERYTHING):
        pod = one(helm_template(values), "Pod")
        annotations = pod["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "test"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
