"""``storekeeper audit``: read the audit log."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.common import JsonOpt, platform


def audit_command(
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. store.sync or service.create.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Only targets starting with this, e.g. my_first_app/.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, max=10000, help="Newest events to show.")
    ] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit log: who did what to which service, app or store, when, and the outcome."""
    from storekeeper import audit

    events = audit.list_events(platform(), action=action, target=target, limit=limit)
    if as_json:
        render.json_out([e.__dict__ for e in events])
        return
    render.table(
        [{**e.__dict__, "at": e.at.strftime("%Y-%m-%d %H:%M:%S")} for e in events],
        [
            ("at", "When (UTC)"),
            ("actor", "Who"),
            ("action", "Action"),
            ("target", "Target"),
            ("outcome", "Outcome"),
            ("detail", "Detail"),
        ],
        empty="No audit events match.",
    )
