"""The ``storekeeper`` command: root options, ``settings``, ``db`` and ``syncstores``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from storekeeper import __version__
from storekeeper.cli import render
from storekeeper.cli.common import Group, JsonOpt, YesOpt, confirm, platform, read_secret, set_debug
from storekeeper.errors import ConfigError, InputError

cli = typer.Typer(
    name="storekeeper",
    cls=Group,
    help="Managed PostgreSQL databases (persistent stores) for the web apps on a portal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"storekeeper {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    home: Annotated[
        str | None, typer.Option("--home", help="Home directory (default: $STOREKEEPER_HOME or ~/.storekeeper).")
    ] = None,
) -> None:
    """Managed PostgreSQL databases (persistent stores) for the web apps on a portal."""
    set_debug(debug)
    if home:
        os.environ["STOREKEEPER_HOME"] = home


# -- settings (storekeeper's own config; named after the seeds' `settings` command) -------


class _PairsGroup(Group):
    """Accept ``--set KEY VALUE`` (as the seeds' ``settings`` command does) as well as ``--set KEY=VALUE``.

    ``settings`` is a group so that it can hold ``rotate-secret-key``; run without a
    subcommand, its callback lists, gets, sets and unsets keys as it always did.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        i = 0
        while i < len(args):
            if args[i] == "--set" and i + 2 < len(args) and "=" not in args[i + 1]:
                rewritten += ["--set", f"{args[i + 1]}={args[i + 2]}"]
                i += 3
                continue
            rewritten.append(args[i])
            i += 1
        return super().parse_args(ctx, rewritten)


settings_cli = typer.Typer(
    cls=_PairsGroup,
    invoke_without_command=True,
    no_args_is_help=False,
    help="Show or change storekeeper's configuration (config.yml in the home); rotate the secret key.",
)
cli.add_typer(settings_cli, name="settings")


@settings_cli.callback()
def settings_command(
    ctx: typer.Context,
    set_: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY VALUE", help="Set a key (repeatable).")
    ] = None,
    get: Annotated[
        list[str] | None, typer.Option("--get", metavar="KEY", help="Print a key's value (repeatable).")
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", metavar="KEY", help="Remove a key from the config file (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or change storekeeper's configuration (config.yml in the home).

    With no option, list every key with its value (secrets masked), where the
    value comes from, and the environment variable that overrides it.
    """
    if ctx.invoked_subcommand is not None:
        if set_ or get or unset or as_json:
            raise InputError(
                f"settings --set/--get/--unset/--json cannot be combined with {ctx.invoked_subcommand}.",
                hint=f"run them one at a time; options of {ctx.invoked_subcommand} go after it: "
                "storekeeper settings rotate-secret-key --yes --json",
            )
        return
    from storekeeper import config as cfg

    home = cfg.home_dir()
    pairs: dict[str, str] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} needs a value.", hint="storekeeper settings --set KEY VALUE")
        pairs[key] = value
    unset = unset or []
    if pairs or unset:
        cfg.set_values(home, pairs, list(unset))
        for key in pairs:
            render.ok(f"{key} set in {home / cfg.CONFIG_FILE}")
        for key in unset:
            render.ok(f"{key} removed from {home / cfg.CONFIG_FILE}")
        for key in pairs:
            if os.environ.get(cfg.env_var(key)) is not None:
                render.warn(f"{cfg.env_var(key)} is set in the environment and overrides {key}.")
        return
    rows = cfg.describe(cfg.load_config())
    if get:
        by_key = {r["key"]: r for r in rows}
        values = {}
        for key in get:
            cfg.check_key(key)
            values[key] = by_key[key]["value"]
        if as_json:
            render.json_out(values)
        else:
            for key in get:
                typer.echo("" if values[key] is None else values[key])
        return
    if as_json:
        render.json_out(rows)
    else:
        render.table(
            rows,
            [("key", "Key"), ("value", "Value"), ("source", "From"), ("env", "Environment variable"), ("help", "Help")],
        )


@settings_cli.command("rotate-secret-key")
def settings_rotate_secret_key(yes: YesOpt = False, as_json: JsonOpt = False) -> None:
    """Replace the secret key with a new one and re-encrypt every stored secret with it.

    Service passwords in the platform database (in one transaction) and the local
    server's password are re-encrypted; the old key is kept as secret_key_previous
    until they all are, so a crash loses nothing: run the command again and it
    finishes the job with the same new key. Restart a running portal afterwards;
    portal users sign in again.
    """
    from storekeeper import config as cfg
    from storekeeper.secret_key import PREVIOUS, rotate_secret_key

    home = cfg.home_dir()
    resuming = bool(cfg.read_file(home).get(PREVIOUS) or os.environ.get(cfg.env_var(PREVIOUS)))
    confirm(
        ("Finish the interrupted secret key rotation" if resuming else "Replace the secret key with a new one")
        + ": every stored secret is re-encrypted, running portals must be restarted and their users sign in again",
        yes,
    )
    result = rotate_secret_key(home)
    if as_json:
        render.json_out(
            {
                "ok": True,
                "resumed": result.resumed,
                "reencrypted": result.reencrypted,
                "total": result.total,
                "previous_in_env": result.previous_in_env,
                "config_file": str(home / cfg.CONFIG_FILE),
            }
        )
    else:
        what = ", ".join(f"{label}: {n}" for label, n in result.reencrypted.items())
        render.ok(
            ("Finished the interrupted rotation" if result.resumed else f"New secret key in {home / cfg.CONFIG_FILE}")
            + f"; re-encrypted {result.total} secret(s) ({what})"
        )
        render.warn("Restart a running portal (storekeeper start) so it uses the new key; its users sign in again.")
    if result.previous_in_env:
        render.warn(f"Now unset {cfg.env_var(PREVIOUS)}: every secret is encrypted with the new key.")


# -- db -----------------------------------------------------------------------------

db_cli = typer.Typer(
    cls=Group,
    help="The platform database (configure, upgrade) and this home's local PostgreSQL server (init, start, stop, status).",
    no_args_is_help=True,
)
cli.add_typer(db_cli, name="db")


@db_cli.command("configure")
def db_configure(
    username: Annotated[str, typer.Option("--username", "-u", help="Admin user to create or update.")] = "admin",
    password: Annotated[
        str | None, typer.Option("--password", "-p", help="Admin password (prompted when left out).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the admin password from standard input.")
    ] = False,
) -> None:
    """Create the platform database if needed, migrate it, and create or update an admin user."""
    from storekeeper import users
    from storekeeper.config import load_config
    from storekeeper.platform import db, open_platform

    config = load_config()
    if password is None:
        password = read_secret(
            f'Password for admin user "{username}"',
            password_stdin,
            hint="pipe it in: echo PASSWORD | storekeeper db configure --password-stdin",
        )
    users.check_password(password)  # refuse a bad password before touching any database
    schema = db.ensure_schema(config)
    p = open_platform(config, check=False)
    try:
        _, new = users.upsert_user(p, username, password, role="admin")
    finally:
        p.close()
    where = p.engine.url.render_as_string(hide_password=True)
    if schema.created:
        render.ok(f"Created the platform database ({where})")
    render.ok(
        f"Platform database at migration {schema.after}"
        + (f" (was {schema.before})" if schema.before != schema.after else "")
    )
    render.ok(f'Admin user "{username}" {"created" if new else "updated"}')


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option("--revision", help="Target migration.")] = "head",
) -> None:
    """Migrate the platform database to the newest schema (creating it if needed)."""
    from storekeeper.config import load_config
    from storekeeper.platform import db

    schema = db.ensure_schema(load_config(), revision)
    if schema.before == schema.after:
        render.ok(f"Platform database already at migration {schema.after}")
    else:
        render.ok(f"Platform database migrated from {schema.before or 'empty'} to {schema.after}")


@db_cli.command("info")
def db_info(as_json: JsonOpt = False) -> None:
    """Show the platform database (where, migration) and this installation's id.

    The id is written into the marker of every database and role this
    installation makes; hosts that share one platform database share it.
    """
    from storekeeper.platform import db

    p = platform()
    info = {
        "installation_id": p.installation_id,
        "platform_database": p.engine.url.render_as_string(hide_password=True),
        "migration": db.current_revision(p.engine),
        "head": db.HEAD_REVISION,
        "home": str(p.config.home),
    }
    if as_json:
        render.json_out(info)
    else:
        render.table([info], [(k, k.replace("_", " ").capitalize()) for k in info])


# -- syncstores ------------------------------------------------------------------------


@cli.command("syncstores")
def syncstores(
    apps: Annotated[
        list[str] | None, typer.Argument(metavar="APP", help="App packages to sync ('all' for every installed app).")
    ] = None,
    all_apps: Annotated[bool, typer.Option("--all", "-a", help="Sync every installed app.")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", "-r", help="Drop and recreate the stores (destroys their data).")
    ] = False,
    firsttime: Annotated[
        bool, typer.Option("--firsttime", "-f", help="Run initializers with first_time=True.")
    ] = False,
    database: Annotated[
        str | None, typer.Option("--database", "-d", metavar="STORE", help="Sync only this store.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be done and change nothing.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", metavar="N", min=1, max=32, help="Stores to work on at once (1: one after another)."
        ),
    ] = 4,
    as_json: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    """Create missing stores (PostGIS for spatial ones) and run their initializers."""
    from storekeeper import stores

    names = [a for a in (apps or []) if a != "all"]
    if not names and not all_apps and "all" not in (apps or []):
        raise InputError(
            "Name the apps to sync, or use --all.", hint="storekeeper syncstores APP  (see: storekeeper apps list)"
        )
    selected = None if (all_apps or "all" in (apps or [])) else names
    if refresh and not dry_run:
        what = ", ".join(selected) if selected else "every installed app"
        confirm(
            f"--refresh drops and recreates the stores of {what}{f' (store {database})' if database else ''}; their data is lost",
            yes,
        )
    p = platform()
    show_progress = not as_json and render.out.is_terminal

    def progress(result: stores.SyncResult) -> None:
        if as_json:
            return
        _print_result(result)

    if show_progress:
        with render.out.status("Syncing stores…"):
            results = stores.sync_stores(
                p,
                selected,
                refresh=refresh,
                first_time=firsttime,
                database=database,
                dry_run=dry_run,
                on_result=progress,
                jobs=jobs,
            )
    else:
        results = stores.sync_stores(
            p,
            selected,
            refresh=refresh,
            first_time=firsttime,
            database=database,
            dry_run=dry_run,
            on_result=progress,
            jobs=jobs,
        )
    failed = [r for r in results if not r.ok]
    if as_json:
        render.json_out({"ok": not failed, "results": results})
    elif not results:
        render.out.print("No stores to sync (the app declares no database settings).")
    else:
        render.out.print(
            f"{len(results) - len(failed)} of {len(results)} store(s) ok"
            + (" (dry run: nothing changed)" if dry_run else "")
        )
    if failed:
        raise typer.Exit(1)


def _print_result(r: object) -> None:
    from storekeeper.stores import SyncResult

    assert isinstance(r, SyncResult)
    where = f" on {r.service}" if r.service else ""
    ft = "" if r.first_time is None else f", first_time={r.first_time}"
    if r.ok:
        render.ok(f"{r.app}/{r.store}: {r.action}{where}{ft} ({r.seconds:.2f}s)")
    else:
        render.error(f"{r.app}/{r.store}: {r.error}", r.hint)


# -- groups in their own modules -------------------------------------------------------

from storekeeper.cli import apps as _apps  # noqa: E402
from storekeeper.cli import audit as _audit  # noqa: E402
from storekeeper.cli import doctor as _doctor  # noqa: E402
from storekeeper.cli import localdb as _localdb  # noqa: E402
from storekeeper.cli import portal as _portal  # noqa: E402
from storekeeper.cli import quickstart as _quickstart  # noqa: E402
from storekeeper.cli import services as _services  # noqa: E402
from storekeeper.cli import stores as _stores  # noqa: E402
from storekeeper.cli import testing as _testing  # noqa: E402

cli.add_typer(_services.services_cli, name="services")
cli.add_typer(_apps.apps_cli, name="apps")
cli.add_typer(_apps.app_settings_cli, name="app-settings")
cli.add_typer(_stores.stores_cli, name="stores")
cli.command("audit")(_audit.audit_command)
cli.command("doctor")(_doctor.doctor)
db_cli.command("init")(_localdb.db_init)
db_cli.command("start")(_localdb.db_start)
db_cli.command("stop")(_localdb.db_stop)
db_cli.command("status")(_localdb.db_status)
cli.command("start")(_portal.start)
cli.command("quickstart")(_quickstart.quickstart)
cli.command("test", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_testing.test_command)


def run() -> None:
    """Entry point of the ``storekeeper`` console script."""
    cli(prog_name="storekeeper")
