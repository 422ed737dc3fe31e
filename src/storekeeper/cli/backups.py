"""``storekeeper stores export|import|clone`` and ``storekeeper backups``: backups, restores and clones of stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.cli.common import JsonOpt, YesOpt, confirm, platform
from storekeeper.errors import InputError

StoreOpt = Annotated[str, typer.Option("--database", "-d", metavar="STORE", help="The store.")]
#: ``--backup DIR`` of the commands that destroy a store's data.
BackupOpt = Annotated[
    Path | None,
    typer.Option(
        "--backup",
        metavar="DIR",
        help="Export the stores that exist into DIR first (keeping the newest backups.keep per store); "
        "nothing is dropped if an export fails.",
    ),
]


def backup_first(apps: list[str], names: list[str] | None, directory: Path | None, *, quiet: bool) -> None:
    """Back up the stores a destructive command is about to drop (``--backup DIR``); raise when one fails."""
    if directory is None:
        return
    from storekeeper.stores import backups

    p = platform()
    for app in apps:
        with _progress(f"Backing up {app}", quiet) as progress:
            results = backups.backup_before(p, app, names, directory, on_progress=progress)
        if not quiet:
            for r in results:
                render.ok(f"{r.app}/{r.store}: backed up to {r.file}")


@contextmanager
def _progress(label: str, quiet: bool, total: int | None = None) -> Iterator[Callable[[int], None] | None]:
    """Show bytes done on a terminal (Rich); nothing with --json or when piped."""
    if quiet or not render.out.is_terminal:
        yield None
        return
    from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn(label), DownloadColumn(), TransferSpeedColumn(), console=render.out) as bar:
        task = bar.add_task(label, total=total)

        def update(done: int) -> None:
            bar.update(task, completed=done)

        yield update


def export(
    app: Annotated[str, typer.Argument(help="App package.")],
    database: Annotated[
        str | None, typer.Option("--database", "-d", metavar="STORE", help="The store to export.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="File to write (with --all: a directory).")
    ] = None,
    all_stores: Annotated[bool, typer.Option("--all", help="Export every store of the app into -o DIR.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a store's backup file: a consistent pg_dump snapshot and a manifest that import checks."""
    from storekeeper.stores import backups

    if all_stores == (database is not None):
        raise InputError(
            "Name one store with --database, or use --all.",
            hint=f"storekeeper stores export {app} --database STORE -o FILE",
        )
    if output is None:
        raise InputError(
            "Say where to write the backup with -o.",
            hint=f"storekeeper stores export {app} --database STORE -o FILE  (or --all -o DIR)",
        )
    p = platform()
    with _progress("Exporting", as_json) as progress:
        if all_stores:
            results = backups.export_app(p, app, output, on_progress=progress)
        else:
            assert database is not None
            results = [backups.export_store(p, app, database, output, on_progress=progress)]
    if as_json:
        render.json_out(results[0] if not all_stores else {"ok": True, "results": results})
        return
    for r in results:
        render.ok(f"{r.app}/{r.store}: {r.bytes:,} bytes written to {r.file} ({r.seconds:.1f}s)")
    if all_stores and not results:
        render.out.print(f"No stores of app {app} exist yet.")


def import_(
    app: Annotated[str, typer.Argument(help="App package.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A backup file made by stores export.")],
    database: StoreOpt,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the store's data if it exists (asks first; --yes to skip).")
    ] = False,
    keep_previous: Annotated[
        bool, typer.Option("--keep-previous", help="Keep the replaced database (as <db>_previous_<id>).")
    ] = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup file into a store: restored aside, then swapped in whole by renames.

    The store's sessions are ended for the swap (a moment); apps reconnect to the new data.
    """
    from storekeeper.stores import backups

    backup = backups.read_backup(file)  # a broken file is refused before anything is asked
    if replace:
        confirm(f'Replace the data of store "{database}" of app "{app}" with {file.name}', yes)
    with _progress("Restoring", as_json, backup.size) as progress:
        result = backups.import_store(
            platform(), app, database, file, replace=replace, keep_previous=keep_previous, on_progress=progress
        )
    if as_json:
        render.json_out(result)
        return
    for name in result.cleaned:
        render.warn(f"dropped {name}, left by an earlier import that was cut short")
    render.ok(f"{app}/{database}: {result.action} from {file.name} ({result.seconds:.1f}s)")
    if result.previous:
        render.out.print(f"The previous data is kept in database {result.previous}.")


def clone(
    app: Annotated[str, typer.Argument(help="App package.")],
    database: StoreOpt,
    to: Annotated[str, typer.Option("--to", metavar="NEW", help="Name of the new (dynamic) store.")],
    service: Annotated[
        str | None, typer.Option("--service", metavar="SERVICE", help="Make it on another service (dump and restore).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a store into a new dynamic store of the app, owned by its own role.

    On the same service it is a template copy: the source's open sessions are ended
    (apps reconnect on their next query) and new ones wait until the copy is done
    (tried up to 5 times if someone connects in between). With --service the source
    is dumped and restored, and its sessions are left alone.
    """
    from storekeeper.stores import backups

    with _progress("Copying", as_json) as progress:
        result = backups.clone_store(platform(), app, database, to, service=service, on_progress=progress)
    if as_json:
        render.json_out(result)
        return
    render.ok(
        f"{app}/{to}: cloned from {database} by {result.method} (database {result.database} on {result.service}, "
        f"{result.seconds:.1f}s)"
    )


def backups_command(
    directory: Annotated[
        Path | None, typer.Argument(metavar="DIR", help="Directory to list (default: the home's backups/).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the backup files in a directory: which store each holds, when, and how big."""
    from storekeeper.stores import backups

    found = backups.list_backups(directory if directory is not None else backups.default_dir(platform()))
    if as_json:
        render.json_out(found)
        return
    render.table(
        [b.to_dict() for b in found],
        [
            ("file", "File"),
            ("app", "App"),
            ("store", "Store"),
            ("spatial", "Spatial"),
            ("created_at", "Created"),
            ("bytes", "Bytes"),
            ("migrations_revision", "Revision"),
            ("server_version", "Server"),
            ("problem", "Problem"),
        ],
        empty="No backup files.",
    )
