"""``storekeeper quickstart``: set up everything missing, then serve the portal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.common import JsonOpt
from storekeeper.cli.portal import (
    HostOpt,
    LogLevelOpt,
    PortOpt,
    WorkersOpt,
    check_port_free,
    require_granian,
    serve,
)


def quickstart(
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            metavar="NAME",
            help="Put the example apps on this registered service instead of the local server.",
        ),
    ] = None,
    admin_username: Annotated[str, typer.Option("--admin-username", help="The admin user to create.")] = "admin",
    admin_password: Annotated[
        str | None, typer.Option("--admin-password", help="The admin's password (default: generated and printed once).")
    ] = None,
    no_examples: Annotated[
        bool, typer.Option("--no-examples", help="Do not install, assign or sync the example apps.")
    ] = False,
    examples: Annotated[
        Path | None,
        typer.Option(
            "--examples", metavar="DIR", help="Where the example apps' sources are (default: the checkout's examples/)."
        ),
    ] = None,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Set up, then exit instead of serving the portal.")
    ] = False,
    host: HostOpt = None,
    port: PortOpt = None,
    workers: WorkersOpt = 1,
    log_level: LogLevelOpt = "warning",
    as_json: JsonOpt = False,
) -> None:
    """From nothing to a running portal with the example apps: safe to run again, it resumes.

    Creates the home and platform database, starts this home's local PostgreSQL
    server and registers it as service "local" (unless a service is already
    registered), installs the example apps links and stream_gages, assigns
    their settings, syncs their stores, creates an admin user, then serves the
    portal in the foreground. Ctrl-C stops the portal; the database server keeps
    running until: storekeeper db stop
    """
    from storekeeper import quickstart as qs
    from storekeeper.config import load_config

    config = load_config()
    host, port = host or config.portal_host, port or config.portal_port
    if not no_serve:
        check_port_free(host, port)  # before changing anything
        if config.portal_server == "granian":
            require_granian()

    marks = {
        "done": "[green]✓[/green]",
        "already": "[green]✓[/green]",
        "skipped": "[dim]-[/dim]",
        "warning": "[yellow]![/yellow]",
        "failed": "[red]✗[/red]",
        "working": "[dim]…[/dim]",
    }

    def show(step: qs.Step) -> None:
        if as_json:
            return
        from rich.markup import escape

        render.out.print(f"{marks.get(step.status, '-')} {escape(step.detail)}")
        if step.hint and step.status in ("warning", "failed", "already"):
            label = "Fix" if step.status != "already" else "Note"
            render.out.print(f"  [bold]{label}:[/bold] {escape(step.hint)}")

    outcome = qs.run(
        service=service,
        examples=not no_examples,
        examples_source=examples,
        admin_username=admin_username,
        admin_password=admin_password,
        on_step=show,
    )
    url = f"http://{host}:{port}"
    if as_json:
        render.json_out({**outcome.to_dict(), "url": url, "serving": not no_serve})
    else:
        if outcome.admin_password:
            render.out.print(
                f"\n[bold]Admin sign-in:[/bold] user [bold]{outcome.admin_username}[/bold], "
                f"password [bold]{outcome.admin_password}[/bold]  (shown only now: write it down)",
                markup=True,
                highlight=False,
            )
        if no_serve:
            flags = "".join(
                f" --{k} {v}"
                for k, v, d in (("host", host, config.portal_host), ("port", port, config.portal_port))
                if v != d
            )
            render.out.print(f"\nReady. Serve the portal with: storekeeper start{flags}  (then {url}/admin)")
        else:
            render.out.print(f"\n[bold]Portal:[/bold] {url}/admin   API docs: {url}/docs")
            for package in outcome.apps:
                render.out.print(f"  app {package}: {url}{qs.EXAMPLE_ENTRY.get(package, f'/apps/{package}/')}")
            render.out.print("Serving until Ctrl-C; the database server keeps running until: storekeeper db stop\n")
    if not outcome.ok and no_serve:
        raise typer.Exit(1)
    if not no_serve:
        serve(host, port, workers, log_level, server=config.portal_server)
