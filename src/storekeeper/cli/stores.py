"""``storekeeper stores``: list every store; create and drop dynamic ones."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.backups import BackupOpt, backup_first
from storekeeper.cli.common import Group, JsonOpt, YesOpt, confirm, platform

stores_cli = typer.Typer(cls=Group, help="List stores; create and drop dynamic stores.", no_args_is_help=True)


def _size(n: int | None) -> str | None:
    if n is None:
        return None
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return None


@stores_cli.command("list")
def list_(
    app: Annotated[str | None, typer.Argument(help="Only this app's stores.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stores with their service, database, and state on the server."""
    from storekeeper import stores

    infos = stores.list_stores(platform(), app)
    if as_json:
        render.json_out(infos)
        return
    rows = [
        {
            **i.to_dict(),
            "size": _size(i.size_bytes),
            "exists": "unknown" if i.exists is None else i.exists,
            "access": {"role": "own role", "service": "service user"}.get(i.access or "", "-"),
        }
        for i in infos
    ]
    render.table(
        rows,
        [
            ("app", "App"),
            ("name", "Store"),
            ("kind", "Kind"),
            ("service", "Service"),
            ("database", "Database"),
            ("spatial", "Spatial"),
            ("exists", "Exists"),
            ("initialized", "Initialized"),
            ("ready", "Ready"),
            ("access", "Reached as"),
            ("size", "Size"),
            ("orphaned", "Orphaned"),
        ],
        empty="No stores.",
    )
    for i in infos:
        if i.problem:
            render.warn(f"{i.app}/{i.name}: {i.problem}")


@stores_cli.command("create")
def create(
    app: Annotated[str, typer.Argument(help="App package.")],
    name: Annotated[str, typer.Argument(help="Store name (\\[a-z]\\[a-z0-9_]*).")],
    connection: Annotated[
        str, typer.Option("--connection", "-c", help="Connection setting whose service hosts the store.")
    ],
    spatial: Annotated[bool, typer.Option("--spatial", help="Enable PostGIS in the store.")] = False,
    initializer: Annotated[
        str,
        typer.Option(
            "--initializer", help="init(engine, first_time) in the app's package: APP_PACKAGE.module.function."
        ),
    ] = "",
    refresh: Annotated[bool, typer.Option("--refresh", help="Drop and recreate it if it exists.")] = False,
    as_json: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    """Create a dynamic store through a connection setting (idempotent)."""
    from storekeeper import stores

    stores.check_initializer_path(app, initializer)  # only the app's own code, refused before it is imported
    if refresh:
        confirm(f'--refresh drops store "{name}" of app "{app}" if it exists; its data is lost', yes)
    result = stores.create_store(
        platform(), app, name, connection, spatial=spatial, initializer=initializer, refresh=refresh
    )
    if as_json:
        render.json_out(result)
    else:
        render.ok(f"{app}/{name}: {result.action} (database {result.database} on {result.service})")


@stores_cli.command("drop")
def drop(
    app: Annotated[str, typer.Argument(help="App package.")],
    name: Annotated[str, typer.Argument(help="Store name.")],
    backup: BackupOpt = None,
    yes: YesOpt = False,
) -> None:
    """Drop a store's database (idempotent); a dynamic store is forgotten too."""
    from storekeeper import stores

    p = platform()
    confirm(f'Drop store "{name}" of app "{app}" and all its data', yes)
    backup_first([app], [name], backup, quiet=False)
    stores.drop_store(p, app, name)
    render.ok(f"{app}/{name} dropped")


@stores_cli.command("rotate-credentials")
def rotate_credentials(
    app: Annotated[str, typer.Argument(help="App package.")],
    database: Annotated[str | None, typer.Option("--database", "-d", metavar="STORE", help="Only this store.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Give an app's store roles new passwords; running apps pick them up with no failed request."""
    from storekeeper import stores

    results = stores.rotate_credentials(platform(), app, database=database)
    failed = [r for r in results if not r.ok]
    if as_json:
        render.json_out({"ok": not failed, "results": results})
    else:
        for r in results:
            if r.ok:
                render.ok(f"{r.app}/{r.store}: {r.action}" + (f" (role {r.role})" if r.role else ""))
            else:
                render.error(
                    f"{r.app}/{r.store}: {r.error}", f"storekeeper stores rotate-credentials {app} --database {r.store}"
                )
        if not results:
            render.out.print("No stores to rotate (the app declares no database settings).")
    if failed:
        raise typer.Exit(1)
