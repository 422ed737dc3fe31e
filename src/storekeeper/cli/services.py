"""``storekeeper services``: register and manage database servers."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.common import Group, JsonOpt, YesOpt, confirm, platform, read_secret
from storekeeper.errors import ServiceError

services_cli = typer.Typer(
    cls=Group, help="Register and manage persistent store services (database servers).", no_args_is_help=True
)
create_cli = typer.Typer(cls=Group, help="Register a service.", no_args_is_help=True)
services_cli.add_typer(create_cli, name="create")

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]


@create_cli.command("persistent")
def create_persistent(
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the new service.")],
    connection: Annotated[str | None, typer.Option("--connection", "-c", help="user[:password]@host[:port]")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="postgresql://user[:password]@host[:port]\\[/maintenance_db]")
    ] = None,
    password_stdin: PasswordStdin = False,
    maintenance_db: Annotated[
        str | None, typer.Option("--maintenance-db", help="Database used for server-level work \\[default: postgres].")
    ] = None,
    sslmode: Annotated[
        str | None, typer.Option("--sslmode", help="libpq sslmode (disable, require, verify-full, ...).")
    ] = None,
    connect_timeout: Annotated[int, typer.Option("--connect-timeout", help="Seconds to wait when connecting.")] = 10,
    pool_size: Annotated[int, typer.Option("--pool-size", help="Connections per store per process.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Register a PostgreSQL server as a persistent store service."""
    from storekeeper import services

    if (connection is None) == (url is None):
        raise ServiceError("Give exactly one of --connection or --url.", hint="--connection postgres@localhost:5432")
    creds = services.parse_connection(connection) if connection else services.parse_url(url or "")
    password = creds.password
    if password is None or password_stdin:
        password = read_secret(f'Password for "{creds.username}" on {creds.host}:{creds.port}', password_stdin)
    info = services.create_service(
        platform(),
        name=name,
        host=creds.host,
        port=creds.port,
        username=creds.username,
        password=password,
        maintenance_db=maintenance_db or creds.database or "postgres",
        sslmode=sslmode,
        connect_timeout=connect_timeout,
        pool_size=pool_size,
        driver=creds.driver or "psycopg",
    )
    if as_json:
        render.json_out(info)
    else:
        render.ok(f'Service "{info.name}" created ({info.url})')
        render.out.print(f"Check it with: storekeeper services test {info.name}")


@services_cli.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the registered services."""
    from storekeeper import services

    infos = services.list_services(platform())
    if as_json:
        render.json_out(infos)
        return
    render.table(
        [i.to_dict() for i in infos],
        [
            ("name", "Name"),
            ("host", "Host"),
            ("port", "Port"),
            ("username", "User"),
            ("maintenance_db", "Maintenance DB"),
            ("pool_size", "Pool"),
            ("assigned", "Assigned to"),
        ],
        empty="No services. Add one: storekeeper services create persistent --name NAME --connection USER@HOST:PORT",
    )


@services_cli.command("show")
def show(name: Annotated[str, typer.Argument(help="Service name.")], as_json: JsonOpt = False) -> None:
    """Show one service (never its password)."""
    from storekeeper import services

    info = services.get_service(platform(), name)
    if as_json:
        render.json_out(info)
    else:
        render.fields(info.to_dict(), title=f"Service {info.name}")


@services_cli.command("update")
def update(
    name: Annotated[str, typer.Argument(help="Service name.")],
    host: Annotated[str | None, typer.Option("--host")] = None,
    port: Annotated[int | None, typer.Option("--port")] = None,
    username: Annotated[str | None, typer.Option("--username")] = None,
    password_stdin: PasswordStdin = False,
    password_prompt: Annotated[bool, typer.Option("--password", help="Prompt for a new password.")] = False,
    maintenance_db: Annotated[str | None, typer.Option("--maintenance-db")] = None,
    sslmode: Annotated[str | None, typer.Option("--sslmode")] = None,
    connect_timeout: Annotated[int | None, typer.Option("--connect-timeout")] = None,
    pool_size: Annotated[int | None, typer.Option("--pool-size")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a service's connection details; apps pick the change up."""
    from storekeeper import services

    password = (
        read_secret(
            f'New password for service "{name}"',
            password_stdin,
            hint=f"pipe it in: echo PASSWORD | storekeeper services update {name} --password-stdin",
        )
        if (password_stdin or password_prompt)
        else None
    )
    info = services.update_service(
        platform(),
        name,
        host=host,
        port=port,
        username=username,
        password=password,
        maintenance_db=maintenance_db,
        sslmode=sslmode,
        connect_timeout=connect_timeout,
        pool_size=pool_size,
    )
    if as_json:
        render.json_out(info)
    else:
        render.ok(f'Service "{info.name}" updated ({info.url})')


@services_cli.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Service name.")],
    force: Annotated[
        bool, typer.Option("--force", help="Remove even while settings use it (they become unassigned).")
    ] = False,
    yes: YesOpt = False,
) -> None:
    """Remove a service (refused while it is assigned, unless --force). Stores on the server are kept."""
    from storekeeper import services

    p = platform()
    services.get_service(p, name)  # fail on an unknown name before asking
    confirm(f'Remove service "{name}"', yes)
    unassigned = services.remove_service(p, name, force=force)
    render.ok(f'Service "{name}" removed')
    for item in unassigned:
        render.warn(f"{item} no longer has a service: storekeeper app-settings set {item.replace('/', ' ')} SERVICE")


@services_cli.command("test")
def test(name: Annotated[str, typer.Argument(help="Service name.")], as_json: JsonOpt = False) -> None:
    """Connect to a service and report version, privileges, PostGIS and connection headroom."""
    from storekeeper import services

    report = services.test_service(platform(), name)
    if as_json:
        render.json_out(report)
        return
    render.ok(f'Connected to service "{name}": PostgreSQL {report["server_version"]}')
    render.fields(
        {
            "superuser": report["superuser"],
            "CREATE DATABASE": report["can_create_database"],
            "CREATE ROLE": report["can_create_role"],
            "stores reached as": report["store_access"],
            "CREATE EXTENSION postgis": report["can_create_postgis"],
            "PostGIS available": report["postgis_version"] or False,
            "PostGIS path": report["postgis_path"],
            "max_connections": report["max_connections"],
            "connections in use": report["connections_in_use"],
            "pool connections per process": f"{report['pool_connections_per_process']} "
            f"({report['assigned_settings']} setting(s) x pool size {report['pool_size']})",
        }
    )
    if not report["can_create_database"]:
        render.warn("this user cannot create stores: ALTER ROLE ... CREATEDB on the server")
    if not report["can_create_role"]:
        render.warn(
            "this user cannot create roles, so every store on it is reached as this user and one app's store "
            "can reach another's: ALTER ROLE ... CREATEROLE on the server, then storekeeper syncstores --all "
            "gives each store its own role"
        )
    if report["postgis_path"] == "none":
        render.warn(f"spatial stores cannot be made on this service: {report['postgis_hint']}")


#: Where scripts put the superuser's password for prepare-postgis (never stored).
SUPERUSER_PASSWORD_ENV = "STOREKEEPER_SUPERUSER_PASSWORD"


@services_cli.command("prepare-postgis")
def prepare_postgis(
    name: Annotated[str, typer.Argument(help="Service name.")],
    superuser: Annotated[
        str, typer.Option("--superuser", help="A superuser (or your provider's admin role) of the service's server.")
    ],
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Once per server, as a superuser: make the PostGIS template spatial stores are cloned from.

    Needed when the service user may not CREATE EXTENSION postgis (``services test``
    says "PostGIS path: none"). The superuser's password comes from a prompt,
    --password-stdin or $STOREKEEPER_SUPERUSER_PASSWORD, and is never stored.
    """
    import os

    from storekeeper import services

    p = platform()
    services.get_service(p, name)  # fail on an unknown name before asking for a password
    password = os.environ.get(SUPERUSER_PASSWORD_ENV)
    if password is None or password_stdin:
        password = read_secret(
            f'Password for superuser "{superuser}"',
            password_stdin,
            hint=f"set {SUPERUSER_PASSWORD_ENV}, or pipe it in: "
            f"storekeeper services prepare-postgis {name} --superuser {superuser} --password-stdin",
        )
    result = services.prepare_postgis(p, name, superuser=superuser, password=password)
    if as_json:
        render.json_out({"ok": True, **result})
        return
    if result["action"] == "already prepared":
        render.ok(f'Service "{name}" is already prepared: spatial stores are cloned from "{result["template"]}"')
    else:
        render.ok(
            f'Prepared service "{name}": spatial stores are cloned from "{result["template"]}" '
            f"(PostGIS {result['postgis_version']}, owned by {result['service_user']})"
        )
    render.out.print(f"Check it with: storekeeper services test {name}")


@services_cli.command("rotate-password")
def rotate_password(
    name: Annotated[str, typer.Argument(help="Service name.")],
    as_json: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    """Give the service's user a new random password (kept encrypted; never shown); running apps follow it."""
    from storekeeper import localdb, services
    from storekeeper.config import load_config

    p = platform()
    services.get_service(p, name)  # an unknown service is refused before asking
    confirm(
        f'Service "{name}" gets a new password; anything else that logs in as its user with the old one '
        "(outside storekeeper) will be refused",
        yes,
    )
    followed: list[bool] = []
    info = services.rotate_password(
        p, name, on_rotated=lambda old, new: followed.append(localdb.follow_rotation(load_config(), old, new))
    )
    if as_json:
        render.json_out({"service": info, "rotated": True, "local_server_password_updated": any(followed)})
        return
    render.ok(f'Service "{name}": user "{info.username}" has a new password')
    if any(followed):
        render.ok("The local server's password in the config follows it (local.password)")
