"""``storekeeper stores``: list every store; create and drop dynamic ones; migrate their schema (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.backups import BackupOpt, backup_first
from storekeeper.cli.common import Group, JsonOpt, YesOpt, confirm, platform

stores_cli = typer.Typer(
    cls=Group, help="List stores; create and drop dynamic stores; migrate their schema.", no_args_is_help=True
)


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


# -- schema migrations (Alembic) --------------------------------------------------------------------

StoreOpt = Annotated[
    str | None, typer.Option("--database", "-d", metavar="STORE", help="Only this store (default: every store).")
]
RequiredStoreOpt = Annotated[str, typer.Option("--database", "-d", metavar="STORE", help="The store.")]


@stores_cli.command("migrate")
def migrate(
    app: Annotated[str, typer.Argument(help="App package.")],
    database: StoreOpt = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="REV", help="Upgrade or downgrade to this revision (an id, head or base; default: head)."
        ),
    ] = None,
    stamp: Annotated[
        str | None,
        typer.Option("--stamp", metavar="REV", help="Record that the store is at this revision, running no migration."),
    ] = None,
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL the migration would run; change nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring an app's stores to their migrations' head, or to a revision (--to); --stamp records one."""
    from storekeeper import stores

    if to is not None and stamp is not None:
        from storekeeper.errors import InputError

        raise InputError("--to and --stamp cannot be used together.", hint=f"storekeeper stores migrate {app} --help")
    results = stores.migrate(platform(), app, database, to=to, stamp=stamp, sql=sql)
    if as_json:
        render.json_out({"ok": True, "results": results})
        return
    for r in results:
        if r.action == "sql":
            render.out.print(r.sql or "", markup=False, end="")
            continue
        where = f"{r.app}/{r.store}"
        if r.action == "absent":
            render.out.print(f"{where}: not made yet (storekeeper syncstores {r.app} makes it at head)", markup=False)
        elif r.action == "up to date":
            render.ok(f"{where}: up to date at {r.after or 'base'}")
        else:
            done = f" ({', '.join(r.revisions)})" if r.revisions and r.action != "stamp" else ""
            render.ok(f"{where}: {r.action} {r.before or 'base'} -> {r.after or 'base'}{done} ({r.seconds:.2f}s)")
    if not results:
        render.out.print(f"No store of {app} declares migrations.")


@stores_cli.command("current")
def current(
    app: Annotated[str, typer.Argument(help="App package.")],
    as_json: JsonOpt = False,
) -> None:
    """Show each store's revision, its migrations' head, and how many revisions are pending."""
    from storekeeper import stores

    found = stores.migration_status(platform(), app)
    if as_json:
        render.json_out(found)
        return
    rows = [
        {
            "store": s.store,
            "database": s.database,
            "current": (s.current or "base") + (" (head)" if s.current and s.current == s.head else "")
            if s.exists
            else "not made",
            "head": s.head,
            "pending": len(s.pending),
            "revisions": [p.revision for p in s.pending],
        }
        for s in found
    ]
    render.table(
        rows,
        [
            ("store", "Store"),
            ("database", "Database"),
            ("current", "Revision"),
            ("head", "Head"),
            ("pending", "Pending"),
            ("revisions", "Pending revisions"),
        ],
        empty=f"No store of {app} declares migrations.",
    )
    for s in found:
        if s.problem:
            render.error(f"{s.app}/{s.store}: {s.problem}", s.hint)


@stores_cli.command("history")
def history(
    app: Annotated[str, typer.Argument(help="App package.")],
    database: RequiredStoreOpt,
    as_json: JsonOpt = False,
) -> None:
    """List a store's revisions, newest first, as Alembic shows them; the store's own is marked (current)."""
    from storekeeper import stores

    where, revisions = stores.migration_history(platform(), app, database)
    if as_json:
        render.json_out(
            {
                "app": where.app,
                "store": where.store,
                "current": where.current,
                "head": where.head,
                "revisions": [{**r.to_dict(), "current": r.revision == where.current} for r in revisions],
            }
        )
        return
    for r in revisions:
        render.out.print(r.line + (" (current)" if r.revision == where.current else ""), markup=False)
    if not revisions:
        render.out.print("No revisions yet.")


@stores_cli.command("revision")
def revision(
    app: Annotated[str, typer.Argument(help="App package.")],
    database: RequiredStoreOpt,
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does (its docstring).")],
    autogenerate: Annotated[
        bool,
        typer.Option(
            "--autogenerate",
            help="Write the operations that bring the store (its test copy when one exists) to the setting's metadata.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a new revision file into the store's script directory, on top of its head."""
    from storekeeper import stores
    from storekeeper.testing.copies import existing_copy

    p = platform()
    copy = existing_copy(p, app, database) if autogenerate else None
    made = stores.new_revision(p, app, database, message, autogenerate=autogenerate, compare_with=copy)
    if as_json:
        render.json_out(made)
        return
    render.ok(f"Revision {made.revision} ({made.down_revision or 'base'} -> {made.revision}), {made.message}")
    render.out.print(f"  written to {made.path}", markup=False)
    if made.compared_with:
        render.out.print(f"  compared the models with database {made.compared_with}", markup=False)
    render.out.print(f"Review it, then apply it: storekeeper syncstores {app} --database {database}", markup=False)
