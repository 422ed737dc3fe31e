"""``--help`` labels options as a user reads them: no type on a flag, a metavar on an option that takes a value.

Typer's own labels (``<bool>``, ``<str>``, ``<list[str]>``, ``<int range>``) made every flag look
as if it took a value; :func:`storekeeper.cli.common.label_params` replaces them. Every command in
the tree is checked, so a new command or option cannot bring them back.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from storekeeper.cli.main import cli

#: Typer's type labels: <bool>, <str>, <int>, <int range>, <float>, <list[str]>, <path>, <tuple...>, <datetime>.
TYPE_LABEL = re.compile(r"<(bool|str|int|float|list\[|path|tuple|datetime|text|file)[^>]*>")


def command_paths() -> list[list[str]]:
    """Every command and group of the ``storekeeper`` tree, as argument lists."""
    root: Any = typer.main.get_command(cli)
    paths: list[list[str]] = []

    def walk(cmd: Any, path: list[str], ctx: Any) -> None:
        paths.append(path)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                walk(sub, [*path, name], sub.context_class(sub, parent=ctx, info_name=name))

    walk(root, [], root.context_class(root, info_name="storekeeper"))
    return paths


PATHS = command_paths()


def test_the_tree_is_walked() -> None:
    assert len(PATHS) > 30
    assert ["syncstores"] in PATHS and ["services", "create", "persistent"] in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "storekeeper")
def test_help_shows_no_type_labels(path: list[str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="storekeeper", terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    found = TYPE_LABEL.findall(result.output)
    assert not found, f"storekeeper {' '.join(path)} --help shows type labels {found}:\n{result.output}"


def test_flags_have_no_label_and_values_have_a_metavar() -> None:
    out = CliRunner().invoke(cli, ["syncstores", "--help"], prog_name="storekeeper", terminal_width=200).output
    assert "[APP]..." in out and "APP..." in out
    assert re.search(r"--all\s+-a\s+Sync every installed app", out), out
    assert re.search(r"--database\s+-d\s+STORE\s", out), out
    assert re.search(r"--jobs\s+-j\s+N\s", out), out
    assert re.search(r"--help\s+-h\s+Show this message", out), out
    settings = CliRunner().invoke(cli, ["settings", "--help"], prog_name="storekeeper", terminal_width=200).output
    assert "KEY VALUE" in settings


def test_help_of_a_real_process_has_no_type_labels() -> None:
    """The installed console script, as a user runs it (no test runner in between)."""
    exe = [sys.executable, "-c", "from storekeeper.cli.main import run; run()"]
    for path in (["--help"], ["syncstores", "--help"], ["db", "stop", "--help"]):
        proc = subprocess.run([*exe, *path], capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""})
        assert proc.returncode == 0, proc.stderr
        assert not TYPE_LABEL.findall(proc.stdout), proc.stdout
