"""``storekeeper apps`` and ``storekeeper app-settings``."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.common import Group, JsonOpt, YesOpt, confirm, platform

apps_cli = typer.Typer(cls=Group, help="List, show and remove installed apps.", no_args_is_help=True)
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
    yes: YesOpt = False,
) -> None:
    """Forget an uninstalled app (or an installed app's orphaned settings)."""
    from storekeeper import apps

    p = platform()
    apps.get_app(p, app)
    confirm(f'Remove app "{app}" records' + (" and DROP its stores" if drop_stores else ""), yes)
    removed = apps.remove_app(p, app, drop_stores=drop_stores)
    render.ok(f'Removed {len(removed)} setting(s) of "{app}": {", ".join(removed) or "-"}')


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
