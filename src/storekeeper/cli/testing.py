"""``storekeeper test``: run an app's tests against test copies of its stores."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from storekeeper.cli import render
from storekeeper.cli.common import JsonOpt, platform
from storekeeper.errors import AppError, ConfigError, InputError


def _tests_path(package: str) -> Path:
    """Return the app's own tests: the ``tests`` directory of the package its class lives in.

    For an app in a namespace package (every Tethys app is in ``tethysapp``) that is the app's
    package inside the namespace, never the namespace, which other apps share.
    """
    from storekeeper import discovery

    app_cls = discovery.app_class(package)
    if app_cls is None:
        raise AppError.not_found(package)
    spec = importlib.util.find_spec(discovery.app_root(app_cls))
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        if (root / "tests").is_dir():
            return root / "tests"
    if roots:
        return roots[0]
    raise AppError(
        f'Cannot find the tests of app "{package}".',
        hint=f"give their path: storekeeper test {package} --path DIR",
        app=package,
    )


def _in_namespace(package: str) -> bool:
    """True when the app's own package sits inside a namespace package (``tethysapp.APP``)."""
    from storekeeper import discovery

    app_cls = discovery.app_class(package)
    return app_cls is not None and "." in discovery.app_root(app_cls)


def test_command(
    ctx: typer.Context,
    app: Annotated[str | None, typer.Argument(help="App package whose tests to run.")] = None,
    path: Annotated[Path | None, typer.Option("--path", help="Run the tests here instead of the app's own.")] = None,
    rebuild_templates: Annotated[
        bool, typer.Option("--rebuild-templates", help="Rebuild store templates even if the app's code is unchanged.")
    ] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Drop all test copies and templates (of APP, or of every app), then exit.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run an app's tests in testing mode: every store resolves to a fresh test copy.

    Arguments after -- go to pytest: storekeeper test my_first_app -- -k gages -x
    """
    from storekeeper.testing import copies

    if clean:
        dropped = copies.clean_all(platform(), templates=True, packages=[app] if app else None)
        if as_json:
            render.json_out({"dropped": dropped})
        else:
            render.ok(f"Dropped {len(dropped)} test database(s)" + (f": {', '.join(dropped)}" if dropped else ""))
        return
    if app is None:
        raise InputError("Name the app whose tests to run.", hint="storekeeper test APP  (see: storekeeper apps list)")
    platform()  # fail early, with the fix, if storekeeper is not set up
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        raise ConfigError(
            f"pytest is not installed in this environment ({sys.prefix}), so app tests cannot run.",
            hint=f"{sys.executable} -m pip install 'storekeeper[test]'  (or just pytest)",
            app=app,
        )
    target = path or _tests_path(app)
    args: list[Any] = [sys.executable, "-m", "pytest", str(target)]
    if _in_namespace(app):
        # Import the tests (a Tethys app's tests/ is a package) by their full name, tethysapp.APP.tests…:
        # otherwise pytest puts tethysapp/ on sys.path and the app's modules load twice, once as APP.…
        args += ["-o", "consider_namespace_packages=true"]
    args += ctx.args
    if rebuild_templates:
        args.append("--rebuild-templates")
    env = {**os.environ, "STOREKEEPER_TESTING": "1", "STOREKEEPER_TEST_APPS": app}
    raise typer.Exit(subprocess.call(args, env=env))


test_command.__test__ = False  # type: ignore[attr-defined]
