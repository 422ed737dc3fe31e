"""The shape of the code, checked like behaviour: import layering, no cycles, lint, types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"}
    )


def test_import_contracts_are_kept() -> None:
    """Entry points above testing above the core; the core imports no CLI/web/testing package; no cycles."""
    proc = _run(str(BIN / "lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout or "broken" not in proc.stdout.split("Contracts:")[-1]


def test_testing_mode_resolves_without_pytest_or_registration() -> None:
    """A plain process with STOREKEEPER_TESTING=1 loads the test-copy mode by name; it never resolves to a live store."""
    code = (
        "import sys\n"
        "from storekeeper.stores import mode\n"
        "m = mode.current()\n"
        "print(m.name, m.database_name('my_first_app', 'example_db'), 'pytest' in sys.modules)\n"
    )
    env = {**os.environ, "STOREKEEPER_TESTING": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["testing", "test_my_first_app_example_db", "False"]


def test_testing_mode_without_its_implementation_fails_instead_of_using_live_stores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from storekeeper.errors import StoreError
    from storekeeper.stores import mode

    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    monkeypatch.setattr(mode, "_testing", None)
    monkeypatch.setattr(mode, "TESTING_IMPLEMENTATION", "storekeeper.no_such_module:TESTING")
    with pytest.raises(StoreError) as err:
        mode.current()
    assert "STOREKEEPER_TESTING" in str(err.value)


def _is_module(dotted: str) -> bool:
    base = ROOT / "src" / Path(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _private_uses(path: Path) -> list[str]:
    """Return the private names (``_x``) of other storekeeper modules that a module imports or reads."""
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    module_aliases: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("storekeeper"):
                    module_aliases.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("storekeeper"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} from {node.module} import {alias.name}")
                elif _is_module(f"{node.module}.{alias.name}"):
                    module_aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module_boundary() -> None:
    src = ROOT / "src" / "storekeeper"
    found = [use for path in sorted(src.rglob("*.py")) for use in _private_uses(path)]
    assert found == []


def test_ruff_finds_nothing_to_lint_or_format() -> None:
    lint = _run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_passes_strict_on_the_core() -> None:
    """``[tool.mypy]`` in pyproject.toml: strict for the core, the default level for cli, portal, testing."""
    proc = _run(str(BIN / "mypy"), "--cache-dir", "/tmp/storekeeper-mypy-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
