"""Pieces every command uses: loading the platform, confirmation, error handling."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from storekeeper.cli import render
from storekeeper.errors import ConfirmationRequired, InputError, StorekeeperError
from storekeeper.platform import Platform, load_platform

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

_state: dict[str, Any] = {"debug": False}


def platform() -> Platform:
    """Return the platform for the current home."""
    return load_platform()


def set_debug(value: bool) -> None:
    _state["debug"] = value


def confirm(action: str, yes: bool) -> None:
    """Ask before a destructive action; without a terminal, refuse unless ``--yes``."""
    if yes:
        return
    if sys.stdin.isatty() and sys.stdout.isatty():
        if typer.confirm(f"{action}. Continue?", default=False):
            return
        raise typer.Abort()
    raise ConfirmationRequired(
        f"{action}: this needs confirmation and there is no terminal to ask on.",
        hint="run it again with --yes",
    )


def read_secret(
    prompt: str, from_stdin: bool, *, hint: str = "pipe it in with --password-stdin (or include it in --connection)"
) -> str:
    """Read a password from stdin (``--password-stdin``) or an interactive prompt."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise InputError(
                "--password-stdin was given but standard input is empty.", hint="echo PASSWORD | storekeeper ..."
            )
        return value
    if not sys.stdin.isatty():
        raise InputError(
            f"{prompt} is needed and there is no terminal to ask on.",
            hint=hint,
        )
    return str(typer.prompt(prompt, hide_input=True))


#: What Typer raises to end a command on purpose (``--help``, ``ctx.exit``, Ctrl-C at a prompt): never caught here.
_FLOW = (typer.Exit, typer.Abort)


class Group(TyperGroup):
    """Click group that turns every failure into one ``Error:`` line plus a ``Fix:`` line, never a traceback.

    * storekeeper errors: their message and hint, exit code 1;
    * arguments that cannot be parsed (a port that is not a number, an unknown option):
      click's message and the command's ``--help``, exit code 2, as click exits;
    * anything unexpected: its type and message, exit code 1 (``--debug`` shows the traceback).
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _FLOW:
            raise
        except StorekeeperError as err:
            self._fail(ctx, err.message, err.hint, type(err).__name__, 1)
        except typer.TyperException as err:  # a usage error: an unknown option, a value that does not parse
            where = getattr(getattr(err, "ctx", None), "command_path", None) or ctx.command_path
            self._fail(
                ctx, err.format_message(), f"{where} --help  (shows what it accepts)", type(err).__name__, err.exit_code
            )
        except Exception as err:
            self._fail(
                ctx,
                f"Unexpected {type(err).__name__}: {str(err).strip() or 'no message'}",
                "run it again with --debug to see where it happened, and report it",
                type(err).__name__,
                1,
            )

    @staticmethod
    def _fail(ctx: Any, message: str, hint: str | None, kind: str, code: int) -> None:
        if _state["debug"] or os.environ.get("STOREKEEPER_DEBUG"):
            traceback.print_exc()
        render.error(message, hint)
        rest = [*getattr(ctx, "protected_args", []), *ctx.args]
        if "--json" in rest:  # scripts asked for JSON: give them the failure as JSON too
            render.json_out({"ok": False, "error": message, "hint": hint, "type": kind})
        ctx.exit(code)
