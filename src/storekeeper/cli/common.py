"""Pieces every command uses: loading the platform, confirmation, error handling."""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup

from storekeeper.cli import render
from storekeeper.errors import ConfirmationRequired, InputError, StorekeeperError

if TYPE_CHECKING:
    from storekeeper.platform import Platform

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

_state: dict[str, Any] = {"debug": False}


def platform() -> Platform:
    """Return the platform for the current home (SQLAlchemy is imported here, not by ``--help``)."""
    from storekeeper.platform import load_platform

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


def label_params(command: Any, ctx: Any) -> None:
    """Give ``command``'s parameters help labels a user reads: none on a flag, a metavar elsewhere.

    Typer labels every option with its Python type (``<bool>``, ``<str>``, ``<list[str]>``),
    so a flag looks as if it took a value. Here a flag (``--help`` too) gets no label, an
    option without a metavar gets its name in capitals (``--database DATABASE``), and an
    argument is shown by its metavar or name in capitals (``APP...``) with no type beside it.
    Idempotent.
    """
    if getattr(command, "_storekeeper_labelled", False):
        return
    params = list(getattr(command, "params", ()))
    help_option = command.get_help_option(ctx) if hasattr(command, "get_help_option") else None
    if help_option is not None:
        params.append(help_option)
    for param in params:
        kind = getattr(param, "param_type_name", None)
        if kind == "option":
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
            elif param.metavar is None:
                desc = getattr(param, "type_descriptor", None)
                if desc is not None and desc.is_choice:  # keep the choices: [smart|fast|immediate]
                    param.metavar = "[" + param.display_type(ctx).strip("<>") + "]"
                else:
                    param.metavar = (param.name or "value").upper()
        elif kind == "argument" and isinstance(param, TyperArgument):
            label = param.metavar or (param.name or "value").upper()
            param.__class__ = _LabelledArgument
            assert isinstance(param, _LabelledArgument)
            param.label = label
            param.metavar = None  # so Typer adds "..." to a variadic argument's label
    command._storekeeper_labelled = True


class _LabelledArgument(TyperArgument):
    """An argument shown by its label (``APP``), with no ``<list[str]>`` type beside it."""

    label: str = ""

    @property
    def display_name_raw(self) -> str:
        return self.label or self.name or ""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class Group(TyperGroup):
    """Click group that turns every failure into one ``Error:`` line plus a ``Fix:`` line, never a traceback.

    * storekeeper errors: their message and hint, exit code 1;
    * arguments that cannot be parsed (a port that is not a number, an unknown option):
      click's message and the command's ``--help``, exit code 2, as click exits;
    * anything unexpected: its type and message, exit code 1 (``--debug`` shows the traceback).
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            label_params(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        label_params(self, ctx)
        super().format_help(ctx, formatter)

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
