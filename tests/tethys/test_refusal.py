"""The stand-in never shadows real Tethys: with ``tethys_apps`` importable, importing ``tethys_sdk`` fails, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _python(code: str, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def fake_tethys(tmp_path: Path) -> Path:
    """A directory holding a package named ``tethys_apps``, as a Tethys Platform installation has."""
    pkg = tmp_path / "tethys_apps"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("MARK = 'real tethys'\n")
    return tmp_path


@pytest.mark.parametrize(
    "statement",
    [
        "import tethys_sdk",
        "from tethys_sdk.base import TethysAppBase",
        "from tethys_sdk.app_settings import PersistentStoreDatabaseSetting",
        "from tethys_sdk.testing import TethysTestCase",
    ],
)
def test_importing_the_stand_in_beside_real_tethys_fails_with_the_fix(fake_tethys: Path, statement: str) -> None:
    result = _python(statement, path=fake_tethys)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: This tethys_sdk is storekeeper-tethys's stand-in"), result.stderr
    assert str(fake_tethys / "tethys_apps") in last  # where the real one is
    assert "pip uninstall storekeeper-tethys" in last
    assert "pip uninstall tethys-platform" in last


def test_real_tethys_still_imports_beside_the_stand_in(fake_tethys: Path) -> None:
    result = _python("import tethys_apps; print(tethys_apps.MARK)", path=fake_tethys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "real tethys"


def test_without_tethys_the_stand_in_imports() -> None:
    result = _python("import tethys_sdk.base, importlib.util; print(importlib.util.find_spec('tethys_apps'))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
