"""Local end-to-end mode: the chart's container command line under a real Prometheus, no cluster.

Runs in ``make test``, here and in CI. It renders the Helm chart with the real helm, starts
Gunicorn with the Deployment container's exact command, args and environment (only the bind
address moved to a free loopback port, and the executable resolved in this virtualenv), runs the
black-box suite against it, then points a real ``prometheus`` (Debian package) at it with a scrape
configuration generated from the chart's scrape settings and checks what Prometheus stored.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from connection_flask.gunicorn_conf import WORKER_CLASSES

from . import blackbox, chart, diagnostics
from .procs import Proc, free_port, poll

pytestmark = pytest.mark.integration

# Short, to keep the test quick; the chart's path and port are used as they are.
SCRAPE_INTERVAL = "1s"
STARTUP_TIMEOUT = 60.0  # generous: benchmarks may be saturating the CPU


@dataclass(frozen=True)
class LocalServer:
    target: blackbox.Target
    spec: chart.ContainerSpec
    scrape: chart.Scrape
    # chart port -> local port, for the scrape config
    port_map: dict[int, int]
    proc: Proc


def _bind_port(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


@contextmanager
def serve_chart(tmp: pytest.TempPathFactory, *set_values: str) -> Iterator[LocalServer]:
    """Gunicorn with the rendered Deployment's command, args and env; only the bind moved."""
    docs = chart.render(*set_values)
    spec = chart.container_spec(docs)
    scrape = chart.scrape_settings(spec)
    bind = spec.env.get("CONNECTION_FLASK_BIND")
    assert bind, "the chart's container does not set CONNECTION_FLASK_BIND"
    assert _bind_port(bind) == scrape.port, (
        f"Gunicorn binds {bind} but Prometheus is told to scrape port {scrape.port}"
    )

    scripts = Path(sysconfig.get_path("scripts"))
    exe = spec.command[0]
    resolved = exe if exe.startswith("/") else str(scripts / exe)
    assert Path(resolved).is_file(), (
        f"the chart runs {exe!r}, which is not in this virtualenv ({scripts}): "
        "is the project installed with `pip install -e '.[test,dev]'`?"
    )
    port = free_port()
    env = {
        "PATH": f"{scripts}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp.mktemp("home")),
        "LANG": "C.UTF-8",
        **spec.env,
        "CONNECTION_FLASK_BIND": f"127.0.0.1:{port}",
    }
    workdir = tmp.mktemp("gunicorn")
    proc = Proc(
        "gunicorn", [resolved, *spec.command[1:]], workdir / "gunicorn.log", env=env, cwd=workdir
    )
    target = blackbox.Target(
        base_url=f"http://127.0.0.1:{port}",
        entry_ttl=float(spec.env["ENTRY_TTL"]) if "ENTRY_TTL" in spec.env else None,
        write_token=spec.env.get("CONNECTION_FLASK_WRITE_TOKEN", ""),
        max_body_bytes=int(spec.env.get("CONNECTION_FLASK_MAX_BODY_BYTES", 4 * 1024 * 1024)),
        label="local",
    )
    with diagnostics.dump_on_failure("gunicorn log", proc.output):
        try:
            blackbox.wait_until_ready(target, STARTUP_TIMEOUT, proc.alive)
            yield LocalServer(target, spec, scrape, {scrape.port: port}, proc)
        finally:
            code = proc.stop()
    # Gunicorn drains and exits 0 on SIGTERM; anything else means the shutdown path broke.
    assert code == 0, f"gunicorn exited with {code} on SIGTERM:\n{proc.output()}"


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The chart with its default values."""
    with serve_chart(tmp_path_factory) as server:
        yield server


def test_scrape_settings_agree(local_server: LocalServer) -> None:
    """The pod annotations and the opt-in ServiceMonitor scrape the same path and port."""
    monitored = chart.service_monitor_scrape(
        chart.render("serviceMonitor.enabled=true"), local_server.spec
    )
    scrape = local_server.scrape
    assert (monitored.path, monitored.port) == (scrape.path, scrape.port), (
        f"ServiceMonitor scrapes {monitored}, the pod annotations say {scrape}"
    )


@pytest.mark.parametrize("check", blackbox.CHECKS, ids=blackbox.CHECK_IDS)
def test_blackbox(local_server: LocalServer, check: Callable[[blackbox.Target], None]) -> None:
    check(local_server.target)


def test_gunicorn_runs_the_charts_command_line(local_server: LocalServer) -> None:
    """The settings the chart passes reach Gunicorn: one worker of the chart's worker class."""
    log = local_server.proc.output(tail=1000)
    assert f"Listening at: {local_server.target.base_url}" in log, log
    chosen = local_server.spec.env["CONNECTION_FLASK_WORKER_CLASS"]
    assert f"Using worker: {WORKER_CLASSES[chosen]}\n" in log, log
    assert log.count("Booting worker with pid") == int(
        local_server.spec.env.get("CONNECTION_FLASK_WORKERS", "1")
    ), log


# --- Prometheus ----------------------------------------------------------------------------------


class PromAPI:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body.get("status") == "success", f"{url}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def scalar(self, expr: str) -> str | None:
        """The value of a one-element vector result, None when the result is empty."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: more than one series: {result}"
        return str(result[0]["value"][1]) if result else None


def prometheus_config(server: LocalServer) -> dict[str, Any]:
    """A scrape config from the chart's settings: its metrics path, its port mapped to ours."""
    local_port = server.port_map[server.scrape.port]
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "connection-flask",
                "metrics_path": server.scrape.path,
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{local_port}"],
                        "labels": {
                            "namespace": chart.NAMESPACE,
                            "port_name": server.scrape.port_name or "",
                        },
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def prometheus(
    local_server: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromAPI]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the `prometheus` binary is not installed: local e2e mode needs a real Prometheus "
            "(Debian: apt-get install -y --no-install-recommends prometheus; .ci/run does this)"
        )
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(local_server)))
    promtool = shutil.which("promtool")
    if promtool is not None:
        done = subprocess.run(
            [promtool, "check", "config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (
            f"promtool rejects the generated config:\n{done.stdout}{done.stderr}"
        )
    port = free_port()
    proc = Proc(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        workdir / "prometheus.log",
        cwd=workdir,
    )
    api = PromAPI(f"http://127.0.0.1:{port}")
    with diagnostics.dump_on_failure("prometheus log", proc.output):
        try:

            def ready() -> int:
                if not proc.alive():
                    raise AssertionError(f"prometheus exited:\n{proc.output()}")
                with urllib.request.urlopen(f"{api.base_url}/-/ready", timeout=5) as resp:
                    return int(resp.status)

            poll("prometheus /-/ready", STARTUP_TIMEOUT, ready, lambda s: s == 200)
            yield api
        finally:
            proc.stop(grace=15)


REQUESTS_EXPR = 'sum(connection_flask_requests_total{job="connection-flask",endpoint!="metrics"})'
P99_EXPR = (
    "histogram_quantile(0.99, sum by (le) (rate("
    'connection_flask_request_duration_seconds_bucket{job="connection-flask",'
    'endpoint=~"publish|getconnection"}[5s])))'
)


def test_prometheus_scrapes_the_chart_target(
    local_server: LocalServer, prometheus: PromAPI
) -> None:
    target = local_server.target
    # up is 1 for the target, scraped on the chart's path.
    poll("up == 1", 30, lambda: prometheus.scalar('up{job="connection-flask"}'), lambda v: v == "1")
    active = prometheus.get("/api/v1/targets")["activeTargets"]
    assert len(active) == 1, active
    assert active[0]["health"] == "up", active[0]
    scrape_url = urllib.parse.urlsplit(active[0]["scrapeUrl"])
    assert scrape_url.path == local_server.scrape.path, active[0]
    assert scrape_url.port == local_server.port_map[local_server.scrape.port], active[0]

    # Baseline: Prometheus's latest sample equals what the server counts now (nothing else talks
    # to it besides Prometheus's own scrapes, which the expression leaves out).
    client = blackbox.Client(target)
    counts = client.metrics().requests()
    baseline = sum(n for (endpoint, _, _), n in counts.items() if endpoint != "metrics")
    poll(
        "baseline request count in Prometheus",
        20,
        lambda: prometheus.scalar(REQUESTS_EXPR),
        lambda v: v is not None and float(v) == baseline,
    )
    assert prometheus.scalar(P99_EXPR) in (None, "NaN"), "p99 over our endpoints before any traffic"

    # Traffic until the p99 over publish/getconnection is a number.
    with blackbox.background_traffic(target) as made:
        p99 = poll(
            "histogram_quantile over the latency histogram",
            30,
            lambda: prometheus.scalar(P99_EXPR),
            lambda v: v is not None and blackbox.is_number(v),
        )
    assert 0 < float(p99) <= 10, f"p99 latency {p99} s is outside the histogram's buckets"
    sent = made()
    assert sent > 0

    # The counter Prometheus stored grew by exactly the requests made.
    want = baseline + sent
    got = poll(
        "request counter in Prometheus",
        20,
        lambda: prometheus.scalar(REQUESTS_EXPR),
        lambda v: v is not None and float(v) >= want,
    )
    assert float(got) == want, f"Prometheus counts {got} requests, {want} were made"


def test_write_token_from_chart(tmp_path_factory: pytest.TempPathFactory) -> None:
    """writeToken.value: the chart's Secret reaches Gunicorn and writes need the token."""
    token = "e2e-" + blackbox.unique("token")
    with serve_chart(tmp_path_factory, f"writeToken.value={token}") as server:
        assert server.target.write_token == token, "the chart did not pass the token to the pod"
        for check in (blackbox.check_write_token, blackbox.check_readme_example):
            check(server.target)
