"""``storekeeper apps`` and ``storekeeper app-settings``."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.backups import BackupOpt, backup_first
from storekeeper.cli.common import Group, JsonOpt, YesOpt, confirm, platform

apps_cli = typer.Typer(cls=Group, help="List, show, adopt and remove installed apps.", no_args_is_help=True)
app_settings_cli = typer.Typer(
    cls=Group, help="Assign services to apps' persistent store settings.", no_args_is_help=True
)

AppArg = Annotated[str, typer.Argument(help="App package, e.g. my_first_app.")]
SETTING_COLUMNS = [
    ("name", "Setting"),
    ("kind", "Kind"),
    ("required", "Required"),
    ("spatial", "Spatial"),
    ("initializer", "Initializer"),
    ("service", "Service"),
    ("state", "Store"),
    ("orphaned", "Orphaned"),
]

#: Settings an app declares that storekeeper does not manage (e.g. a Tethys app's custom settings).
UNMANAGED_COLUMNS = [("kind", "Kind"), ("name", "Setting"), ("description", "Description")]


@apps_cli.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List apps: installed ones and orphans whose package is gone."""
    from storekeeper import apps

    infos, problems = apps.list_apps(platform())
    for problem in problems:
        render.warn(problem.message)
    if as_json:
        render.json_out({"apps": infos, "problems": [p.__dict__ for p in problems]})
        return
    rows = [
        {
            **i.to_dict(),
            "settings": len(i.settings),
            "status": "orphaned"
            if not i.installed
            else ("ready" if i.ready else ("stores not ready" if i.configured else "needs services")),
        }
        for i in infos
    ]
    render.table(
        rows,
        [("package", "Package"), ("name", "Name"), ("status", "Status"), ("settings", "Settings")],
        empty="No apps installed. An app is a package with an entry point in group 'storekeeper.apps'.",
    )


@apps_cli.command("show")
def show(app: AppArg, as_json: JsonOpt = False) -> None:
    """Show an app and its settings."""
    from storekeeper import apps

    info = apps.get_app(platform(), app)
    if as_json:
        render.json_out(info)
        return
    render.fields(
        {
            "name": info.name,
            "description": info.description,
            "installed": info.installed,
            "configured": info.configured,
            "ready": info.ready,
        },
        title=f"App {info.package}",
    )
    render.table([s.to_dict() for s in info.settings], SETTING_COLUMNS, empty="No persistent store settings.")
    if info.unmanaged_settings:
        from storekeeper.app_settings import UNMANAGED_NOTE

        render.table(
            [render.escaped(u.__dict__) for u in info.unmanaged_settings],
            UNMANAGED_COLUMNS,
            title=f"Other settings ({UNMANAGED_NOTE})",
        )
    for s in info.settings:
        if s.problem:
            render.warn(f"{info.package}/{s.name}: {s.problem}")


@apps_cli.command("remove")
def remove(
    app: AppArg,
    drop_stores: Annotated[bool, typer.Option("--drop-stores", help="Also drop the stores' databases.")] = False,
    backup: BackupOpt = None,
    yes: YesOpt = False,
) -> None:
    """Forget an uninstalled app (or an installed app's orphaned settings)."""
    from storekeeper import apps

    p = platform()
    apps.get_app(p, app)
    confirm(f'Remove app "{app}" records' + (" and DROP its stores" if drop_stores else ""), yes)
    if drop_stores:
        backup_first([app], None, backup, quiet=False)
    removed = apps.remove_app(p, app, drop_stores=drop_stores)
    render.ok(f'Removed {len(removed)} setting(s) of "{app}": {", ".join(removed) or "-"}')


@apps_cli.command("adopt")
def adopt(
    app: AppArg,
    database: Annotated[
        str | None, typer.Option("--database", "-d", metavar="STORE", help="Only this setting's database.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the databases and show what would change; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    """Take over the databases another tool (Tethys) made for an app's settings, in place, data and all.

    Each assigned database setting's database must exist and carry no
    storekeeper marker. It gets the store's own role as owner (with every
    object in it) and this installation's marker; the next syncstores keeps
    its data and runs the initializer with first_time=False.
    """
    from storekeeper import stores

    p = platform()
    if not dry_run and not yes:
        # Check first (a refusal needs no confirmation), then ask before owners change.
        planned = stores.adopt_stores(p, app, database=database, dry_run=True)
        if not as_json:
            for r in planned:
                _print_adoption(r)
        todo = [r.store for r in planned if r.action == stores.adopt.WOULD]
        if todo:
            confirm(
                f'Adopt {len(todo)} database(s) of app "{app}" ({", ".join(todo)}): each gets its store\'s own role '
                "as owner, with every object in it, and this installation's marker",
                yes,
            )
    results = stores.adopt_stores(p, app, database=database, dry_run=dry_run)
    failed = [r for r in results if not r.ok]
    if as_json:
        render.json_out({"ok": not failed, "dry_run": dry_run, "results": results})
    else:
        for r in results:
            _print_adoption(r)
        if not results:
            render.out.print("No databases to adopt (the app declares no database settings).")
        else:
            adopted = [r for r in results if r.action in (stores.adopt.ADOPTED, stores.adopt.ALREADY)]
            render.out.print(
                f"{len(adopted) if not dry_run else len([r for r in results if r.ok])} of {len(results)} "
                + ("database(s) adopted" if not dry_run else "database(s) could be adopted (dry run: nothing changed)")
            )
            if not dry_run and any(r.action == stores.adopt.ADOPTED for r in results):
                render.out.print(
                    f"Next: storekeeper syncstores {app}  (keeps the data; runs the initializers with first_time=False)"
                )
    if failed:
        raise typer.Exit(1)


def _print_adoption(r: object) -> None:
    from storekeeper.stores import AdoptResult

    assert isinstance(r, AdoptResult)
    where = f" (database {r.database} on {r.service})" if r.service else ""
    if not r.ok:
        render.error(f"{r.app}/{r.store}: {r.error}", r.hint)
        return
    if r.action.startswith("skipped"):
        render.out.print(f"- {r.app}/{r.store}: {r.action}" + (f"; to adopt it: {r.hint}" if r.hint else ""))
        return
    parts = []
    if r.tables:
        shown = ", ".join(r.tables[:8]) + (f", … ({len(r.tables) - 8} more)" if len(r.tables) > 8 else "")
        parts.append(f"{len(r.tables)} table(s): {shown}")
    if r.postgis:
        parts.append(f"PostGIS {r.postgis}")
    if r.role and r.objects is not None:
        parts.append(
            f"owner: role {r.role} ({r.objects} object(s) {'to move' if r.action == 'would adopt' else 'moved'})"
        )
    render.ok(f"{r.app}/{r.store}: {r.action}{where}" + (f"; {'; '.join(parts)}" if parts else ""))
    for note in r.notes:
        render.warn(f"{r.app}/{r.store}: {note}")


@app_settings_cli.command("list")
def settings_list(app: AppArg, as_json: JsonOpt = False) -> None:
    """List an app's persistent store settings with their services and stores."""
    from storekeeper import apps

    infos = apps.list_settings(platform(), app)
    if as_json:
        render.json_out(infos)
        return
    render.table([s.to_dict() for s in infos], SETTING_COLUMNS, empty="No persistent store settings.")
    if any(s.kind == "connection" and s.service for s in infos):
        render.out.print(
            "Connection settings connect as their service's user (a server-level socket, by design); "
            "each store is reached as its own role when the service may create roles (storekeeper stores list)."
        )


@app_settings_cli.command("set")
def settings_set(
    app: AppArg,
    setting: Annotated[str, typer.Argument(help="Setting name, e.g. example_db.")],
    service: Annotated[str, typer.Argument(help="Service name (see: storekeeper services list).")],
) -> None:
    """Assign a service to an app's setting."""
    from storekeeper import apps

    info = apps.assign_service(platform(), app, setting, service)
    render.ok(f'{app}/{info.name} now uses service "{service}"')
    if info.kind == "database" and info.state != "initialized":
        render.out.print(f"Create its store with: storekeeper syncstores {app}")


@app_settings_cli.command("reset")
def settings_reset(
    app: AppArg,
    setting: Annotated[str, typer.Argument(help="Setting name.")],
) -> None:
    """Remove the service assignment from an app's setting."""
    from storekeeper import apps

    info = apps.reset_setting(platform(), app, setting)
    render.ok(f"{app}/{info.name} has no service now")
