"""The wheel the image installs: setuptools builds it from an explicit list of packages."""

from __future__ import annotations

import tomllib

from tests.deploy.conftest import ROOT

SERVICE = ROOT / "service"


def test_every_package_under_service_is_listed_for_the_wheel() -> None:
    # An unlisted subpackage is still copied, as data and with a deprecation warning, until a
    # setuptools release drops it and the image fails to import it.
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {
        ".".join(init.parent.relative_to(SERVICE).parts) for init in SERVICE.rglob("__init__.py")
    }
    assert found == set(listed)
