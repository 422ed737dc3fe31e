"""The public surface: a short, sorted, complete __all__, and a core free of CLI and web packages."""

from __future__ import annotations

import subprocess
import sys
import types

import storekeeper


def test_all_is_sorted_and_complete() -> None:
    public = {n for n, v in vars(storekeeper).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert storekeeper.__all__ == sorted(storekeeper.__all__)
    assert set(storekeeper.__all__) == public | {"__version__"}


def test_core_imports_without_cli_or_web_packages() -> None:
    code = (
        "import sys\n"
        "import storekeeper, storekeeper.apps, storekeeper.stores, storekeeper.services, storekeeper.engines\n"
        "import storekeeper.discovery, storekeeper.config, storekeeper.audit, storekeeper.platform\n"
        "print(sorted(m for m in ('typer', 'rich', 'click', 'fastapi', 'jinja2', 'starlette') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
