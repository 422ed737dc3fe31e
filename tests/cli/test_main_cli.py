"""The root command: --version, --help, and the command names the issue fixes."""

from __future__ import annotations

import pytest

from storekeeper import __version__
from tests.cli.helpers import ok, process_ok

GROUPS = ["settings", "db", "services", "apps", "app-settings", "stores", "syncstores"]


def test_version_prints_the_package_version(run_cli):
    proc = process_ok(run_cli("--version"))
    assert proc.stdout.strip() == f"storekeeper {__version__}"


def test_help_lists_every_command_group(invoke):
    out = ok(invoke("--help")).stdout
    for group in GROUPS:
        assert group in out


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ("db", ["configure", "upgrade"]),
        ("services", ["create", "list", "show", "update", "remove", "test"]),
        ("services create", ["persistent"]),
        ("apps", ["list", "show", "remove"]),
        ("app-settings", ["list", "set", "reset"]),
        ("stores", ["list", "create", "drop"]),
    ],
)
def test_group_help_lists_its_commands(invoke, group, commands):
    out = ok(invoke(f"{group} --help")).stdout
    for command in commands:
        assert command in out


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("settings", ["--set", "--get", "--unset", "--json"]),
        ("db configure", ["--username", "--password", "--password-stdin"]),
        ("services create persistent", ["--name", "--connection", "--url", "--password-stdin"]),
        ("services remove", ["--force", "--yes"]),
        ("syncstores", ["--all", "--refresh", "--firsttime", "--database", "--dry-run", "--json", "--yes"]),
        ("stores create", ["--connection", "--spatial", "--initializer"]),
        ("stores drop", ["--yes"]),
        ("apps remove", ["--drop-stores", "--yes"]),
    ],
)
def test_command_help_shows_the_flags_of_the_contract(invoke, command, flags):
    out = ok(invoke(f"{command} --help")).stdout
    for flag in flags:
        assert flag in out


def _command_paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


def test_every_command_help_renders(invoke):
    """Help text goes through Rich markup: a bracket like [/db] in it must not break --help."""
    from typer.main import get_command

    from storekeeper.cli.main import cli

    paths = list(_command_paths(get_command(cli)))
    assert len(paths) > 20
    for path in paths:
        result = invoke([*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
    wide = {"COLUMNS": "250"}
    assert "[/maintenance_db]" in invoke("services create persistent --help", env=wide).stdout
    assert "[a-z][a-z0-9_]*" in invoke("stores create --help", env=wide).stdout


def test_errors_show_no_traceback_unless_debug(invoke):
    plain = invoke("services show nope")
    assert plain.exit_code == 1
    assert "Traceback" not in plain.output
    debug = invoke("--debug services show nope")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr
    assert "Error: " in debug.stderr


def test_unknown_command_is_a_usage_error(run_cli):
    proc = run_cli("no-such-command")
    assert proc.returncode == 2
    assert "no-such-command" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        "settings",
        "services list",
        "services show local",
        "apps list",
        "apps show my_first_app",
        "app-settings list my_first_app",
        "stores list",
        "stores list my_first_app",
    ],
)
def test_every_listing_command_takes_json(invoke, my_first_app, command):
    import json

    result = ok(invoke(f"{command} --json"))
    json.loads(result.stdout)
