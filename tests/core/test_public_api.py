"""The public surface: a short, sorted, complete __all__, and a core free of CLI and web packages."""

from __future__ import annotations

import subprocess
import sys
import types

import storekeeper


def test_all_is_sorted_and_complete() -> None:
    for name in storekeeper.__all__:  # the lazy names (AppBase, the settings) resolve too
        assert getattr(storekeeper, name) is not None
    public = {n for n, v in vars(storekeeper).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert storekeeper.__all__ == sorted(storekeeper.__all__)
    assert set(storekeeper.__all__) == public | {"__version__"}


def test_import_storekeeper_and_the_cli_stay_light() -> None:
    """``import storekeeper`` and ``storekeeper --help`` import no SQLAlchemy, psycopg or web framework."""
    code = (
        "import sys\n"
        "import storekeeper, storekeeper.cli.main\n"
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'fastapi', 'pydantic', 'starlette') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loading_a_named_app_imports_no_other_app_and_no_router() -> None:
    """A command that names an app imports that app only; its router (a string) is left to the portal."""
    code = (
        "import sys\n"
        "from storekeeper import discovery\n"
        "apps, problems = discovery.load_apps(['links'])\n"
        "assert list(apps) == ['links'] and not problems, (apps, problems)\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'jinja2', 'links.routes', 'stream_gages', 'my_first_app')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_core_imports_without_cli_or_web_packages() -> None:
    code = (
        "import sys\n"
        "import storekeeper, storekeeper.apps, storekeeper.stores, storekeeper.services, storekeeper.engines\n"
        "import storekeeper.discovery, storekeeper.config, storekeeper.audit, storekeeper.platform\n"
        "print(sorted(m for m in ('typer', 'rich', 'click', 'fastapi', 'jinja2', 'starlette') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
