"""All terminal output of the CLI: Rich tables on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table


def _width(stream: Any) -> int | None:
    """Rich's width, except that piped output gets 160 columns rather than 80 (tables fold less)."""
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None  # Rich measures the terminal or reads $COLUMNS
    return 160


out = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def json_out(data: Any) -> None:
    """Print ``data`` as JSON on stdout (no Rich markup, so scripts can parse it)."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2) + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def table(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
    empty: str = "Nothing to show.",
) -> None:
    """Print rows as a table with the given (key, heading) columns."""
    rows = list(rows)
    if not rows:
        out.print(empty)
        return
    t = Table(title=title, show_lines=False, header_style="bold")
    for _key, heading in columns:
        t.add_column(heading, overflow="fold")
    for row in rows:
        t.add_row(*(_cell(row.get(key)) for key, _ in columns))
    out.print(t)


def fields(data: dict[str, Any], *, title: str | None = None) -> None:
    """Print one record as aligned "key: value" lines."""
    if title:
        out.print(f"[bold]{title}[/bold]")
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        out.print(f"  {key.ljust(width)}  {_cell(value)}", markup=False)


def ok(message: str) -> None:
    out.print("[green]✓[/green] " + _escape(message))


def warn(message: str) -> None:
    err.print("[yellow]Warning:[/yellow] " + _escape(message))


def error(message: str, hint: str | None = None) -> None:
    err.print("[red]Error:[/red] " + _escape(message))
    if hint:
        err.print("[bold]Fix:[/bold] " + _escape(hint))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def escape(text: str) -> str:
    """Return ``text`` with Rich markup escaped, to print inside a marked-up line."""
    return _escape(text)
