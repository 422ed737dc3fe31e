"""The package surface: a sorted, importable ``__all__``, a core free of CLI and web imports, docstrings."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest

import storekeeper

CORE_MODULES = [
    "storekeeper.apps",
    "storekeeper.services",
    "storekeeper.stores.initializers",
    "storekeeper.stores.listing",
    "storekeeper.stores.provision",
    "storekeeper.stores.records",
    "storekeeper.stores.resolve",
    "storekeeper.stores.sync",
]


def test_all_is_sorted():
    assert list(storekeeper.__all__) == sorted(storekeeper.__all__)


def test_all_has_no_duplicates():
    assert len(set(storekeeper.__all__)) == len(storekeeper.__all__)


@pytest.mark.parametrize("name", storekeeper.__all__)
def test_every_name_in_all_is_importable(name):
    namespace: dict[str, object] = {}
    exec(f"from storekeeper import {name}", namespace)
    assert namespace[name] is getattr(storekeeper, name)


def test_all_lists_the_public_api_of_the_design():
    expected = {
        "AppBase",
        "PersistentStoreConnectionSetting",
        "PersistentStoreDatabaseSetting",
        "StorekeeperError",
        "__version__",
    }
    assert expected <= set(storekeeper.__all__)


def test_core_imports_without_cli_or_web_packages():
    code = textwrap.dedent(
        """
        import sys
        import storekeeper, storekeeper.stores, storekeeper.services, storekeeper.apps, storekeeper.engines
        print(",".join(sorted(m for m in ("typer", "rich", "fastapi", "jinja2") if m in sys.modules)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"the core imported {proc.stdout.strip()}"


def _public_functions(module_name):
    module = importlib.import_module(module_name)
    for name, obj in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != module_name:
            continue
        yield f"{module_name}.{name}", obj


@pytest.mark.parametrize("module_name", CORE_MODULES)
def test_every_public_function_has_a_docstring(module_name):
    functions = dict(_public_functions(module_name))
    assert functions, f"{module_name} has no public functions"
    missing = [name for name, func in functions.items() if not (func.__doc__ or "").strip()]
    assert missing == []


def test_appbase_public_methods_have_docstrings():
    missing = [
        name
        for name, member in vars(storekeeper.AppBase).items()
        if not name.startswith("_")
        and isinstance(member, classmethod | staticmethod)
        and not (member.__func__.__doc__ or "").strip()
    ]
    assert missing == []
