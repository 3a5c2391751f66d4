"""End-to-end fixtures shared by local and kind mode: failure dumps."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from . import diagnostics


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for name, text in diagnostics.collect():
            report.sections.append((f"{name} ({report.when})", text))
    return report
