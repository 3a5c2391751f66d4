"""The `helm test` pod's check script, run for real against the service on loopback.

Rendering proves the pod is well formed; this proves its script passes against the actual API
(with read and write tokens, as the everything-enabled values configure them) and fails when the
service does not do what the script expects."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from connection_flask.app import create_app
from connection_flask.settings import Settings
from tests.deploy.conftest import CHART, helm_template, one

WRITE, READ = "w-token-for-tests", "r-token-for-tests"


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


def run_script(base_url: str, write: str, read: str) -> subprocess.CompletedProcess[str]:
    pod = one(helm_template(CHART / "ci" / "all-enabled-values.yaml"), "Pod")
    [container] = pod["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["python", "-c"]
    env_names = {e["name"] for e in container["env"]}
    assert {"BASE_URL", "CONNECTION_FLASK_WRITE_TOKEN", "CONNECTION_FLASK_READ_TOKEN"} <= env_names
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BASE_URL": base_url,
        "CONNECTION_FLASK_WRITE_TOKEN": write,
        "CONNECTION_FLASK_READ_TOKEN": read,
    }
    return subprocess.run(
        [sys.executable, "-c", command[2]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helm_test_script_passes_against_the_service(service_url: str) -> None:
    proc = run_script(service_url, WRITE, READ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "connection-flask helm test passed" in proc.stdout


def test_helm_test_script_fails_when_writes_are_refused(service_url: str) -> None:
    proc = run_script(service_url, "wrong-token", READ)
    assert proc.returncode != 0
    assert "FAIL publish" in proc.stderr


def test_helm_test_script_cleans_up_after_a_failure(service_url: str) -> None:
    proc = run_script(service_url, WRITE, "wrong-read-token")  # publish works, lookup is refused
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


def test_the_pod_outlives_its_run_so_helm_v3_can_read_its_logs() -> None:
    """Helm v3 applies the hook delete policy before `helm test --logs` reads the logs, so a
    policy that deletes the pod on success (or failure) fails every such run with "unable to get
    pod logs"; Helm v4 reads first. Deleting it only when the next run starts works under both,
    and still spares that next run a 409 on the pod's name."""
    for values in (None, CHART / "ci" / "all-enabled-values.yaml"):
        pod = one(helm_template(values), "Pod")
        annotations = pod["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "test"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
