"""The chart README's values table is generated from values.yaml and must be current."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.conftest import CHART, ROOT

SCRIPT = ROOT / "hack" / "chart-readme.py"


def check(chart: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--chart", str(chart)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_readme_values_table_is_current() -> None:
    proc = check(CHART)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stale_readme_is_detected(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    values.write_text(
        values.read_text().replace("# -- Image repository.", "# -- Where images live.")
    )
    proc = check(chart)
    assert proc.returncode == 1
    assert "Where images live." in proc.stdout


def test_every_value_is_documented() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, val in values.items():
        documented = f"| `{key}` |" in readme or (
            isinstance(val, dict) and any(f"| `{key}.{sub}" in readme for sub in val)
        )
        assert documented, f"values.yaml key {key!r} has no row in the README table"
        if isinstance(val, dict) and f"| `{key}` |" not in readme:
            for sub in val:
                assert f"| `{key}.{sub}" in readme, f"{key}.{sub} undocumented"
