"""``storekeeper doctor``: one line per finding, with the command that fixes it."""

from __future__ import annotations

import typer

from storekeeper.cli import render
from storekeeper.cli.common import JsonOpt

_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


def doctor(as_json: JsonOpt = False) -> None:
    """Check the home, the platform database, each service and store; exit 1 when a finding is an error."""
    from storekeeper import doctor as checks

    report = checks.check()
    if as_json:
        render.json_out(report)
    else:
        for f in report.findings:
            style = _STYLE.get(f.level, "")
            line = f"[{style}]{f.level:<7}[/{style}] {render.escape(f.subject)}: {render.escape(f.message)}"
            if f.fix:
                line += f"  [bold]Fix:[/bold] {render.escape(f.fix)}"
            render.out.print(line)
        errors = sum(f.level == "error" for f in report.findings)
        render.out.print("No problems found." if report.ok else f"{errors} error(s).")
    if not report.ok:
        raise typer.Exit(1)
