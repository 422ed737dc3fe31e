"""``storekeeper db init | start | stop | status``: a local PostgreSQL server for this home."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.common import JsonOpt

if TYPE_CHECKING:
    from storekeeper.config import Config


class StopMode(enum.StrEnum):
    """PostgreSQL's shutdown modes, as ``pg_ctl stop --mode`` takes them."""

    smart = "smart"
    fast = "fast"
    immediate = "immediate"


#: ``db status``'s exit code when the server is initialized but not running (as ``pg_ctl status``'s).
NOT_RUNNING = 3


def _config() -> Config:
    from storekeeper.config import load_config

    return load_config()


def db_init(as_json: JsonOpt = False) -> None:
    """Create the local PostgreSQL server's data directory (loopback only, password auth)."""
    from storekeeper import localdb

    srv, created = localdb.init(_config())
    if as_json:
        render.json_out({"created": created, "datadir": str(srv.datadir), "port": srv.port})
    else:
        render.ok(f"{'Initialized' if created else 'Already initialized:'} local PostgreSQL server in {srv.datadir}")


def db_start(
    register_service: Annotated[
        str | None,
        typer.Option(
            "--register-service", metavar="NAME", help="Also register (or update) it as service NAME, e.g. local."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start the local PostgreSQL server (initializing it first if needed); a no-op when running."""
    from storekeeper import localdb

    _, started = localdb.start(_config())
    config = _config()  # read again: a first start stored the new password
    st = localdb.status(config)
    if register_service:
        from storekeeper.cli.common import platform

        localdb.register_service(config, platform(), register_service)
    if as_json:
        render.json_out({"started": started, "service": register_service, **st})
        return
    render.ok(f"{'Started' if started else 'Already running:'} local PostgreSQL {st['version']} at {st['url']}")
    if register_service:
        render.ok(f'Registered it as service "{register_service}" (storekeeper services show {register_service})')
    if not st["postgis_available"]:
        render.warn(
            "PostGIS is not installed for these PostgreSQL binaries: spatial stores will fail "
            f"(Debian/Ubuntu: apt-get install postgresql-{str(st['version']).split('.')[0]}-postgis-3)"
        )


def db_stop(
    mode: Annotated[
        StopMode,
        typer.Option(
            "--mode",
            help="smart waits for clients to leave, fast ends their sessions, "
            "immediate aborts (crash recovery at the next start).",
        ),
    ] = StopMode.fast,
    as_json: JsonOpt = False,
) -> None:
    """Stop the local PostgreSQL server; a no-op when it is not running."""
    from storekeeper import localdb

    stopped = localdb.stop(_config(), mode=mode.value)
    if as_json:
        render.json_out({"stopped": stopped})
    else:
        render.ok("Stopped the local PostgreSQL server" if stopped else "The local PostgreSQL server was not running")


def db_status(as_json: JsonOpt = False) -> None:
    """Show whether the local PostgreSQL server exists and runs, where, and whether PostGIS is available."""
    from storekeeper import localdb

    st = localdb.status(_config())
    # Scripts test "is it running" by the exit code, with or without --json.
    stopped = st["running"] is False and bool(st["initialized"])
    if as_json:
        render.json_out(st)
        if stopped:
            raise typer.Exit(NOT_RUNNING)
        return
    render.fields(
        {
            "initialized": st["initialized"],
            "running": st["running"],
            "data directory": st["datadir"],
            "url": st["url"],
            "pid": st["pid"],
            "version": st["version"],
            "PostGIS available": st["postgis_available"],
        },
        title="Local PostgreSQL server",
    )
    if not st["initialized"]:
        render.out.print("Create it with: storekeeper db init  (or storekeeper db start)")
    if stopped:
        raise typer.Exit(NOT_RUNNING)  # like pg_ctl status: scripts can test "is it running"
