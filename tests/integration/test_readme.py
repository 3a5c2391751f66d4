"""The README's curl example, run as written against a real server."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import README_LOOKUP_ANSWER
from tests.integration.conftest import BIN, ROOT, Server

pytestmark = pytest.mark.integration


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    [block] = [b for b in blocks if "publish.json" in b]
    return block


def test_readme_curl_example_publishes_looks_up_and_retracts(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server([str(BIN / "connection-flask")])
    script = readme_example().replace("localhost:5000", f"127.0.0.1:{server.port}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # publish answers OK, the lookup the README's JSON, retract-partition OK: curl adds no newlines.
    assert done.stdout == "OK" + README_LOOKUP_ANSWER.decode() + "OK"
    assert README_LOOKUP_ANSWER.decode() in (ROOT / "README.md").read_text()
