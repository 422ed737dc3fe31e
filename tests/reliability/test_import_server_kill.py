"""The server killed (SIGKILL of the postmaster) during a store's import: the store is intact, the next import cleans up."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from storekeeper import engines, stores
from storekeeper.stores import backups
from tests.reliability.conftest import APP, CrashServer, store_check

STORE = "s1"
DB = f"{APP}_{STORE}"


def _count(server: CrashServer) -> int:
    with server.connect(DB) as conn:
        row = conn.execute("SELECT count(*) FROM bulk").fetchone()
        assert row is not None
        return int(row[0])


def _wait_for(server: CrashServer, query: str, params: tuple[Any, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with server.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(query, params).fetchone():  # type: ignore[arg-type]
                return
            time.sleep(0.002)
    raise AssertionError(f"never saw: {query}")


def _sides(server: CrashServer) -> list[str]:
    with server.connect() as conn:
        found = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (DB + "\\_%",)).fetchall()
    return sorted(r[0] for r in found)


def _intact(server: CrashServer, count: int) -> None:
    with server.connect() as conn:
        assert store_check(server.url, conn, DB, f"{APP}/{STORE}") is None
        row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (DB,)).fetchone()
        assert row == (True,)
    assert _count(server) == count


@pytest.mark.parametrize("moment", ["restore", "swap"])
def test_a_server_killed_during_an_import_leaves_the_store_intact(
    crash_home: Any, crash_server: CrashServer, tmp_path: Path, moment: str
) -> None:
    home, _ = crash_home([STORE])
    platform = home.platform
    assert stores.sync_stores(platform, [APP], database=STORE)[0].ok
    with crash_server.connect(DB) as conn:
        conn.execute("CREATE TABLE bulk AS SELECT g AS id, 'row ' || g AS name FROM generate_series(1, 300000) g")
    file = tmp_path / "s1.skbackup"
    backups.export_store(platform, APP, STORE, file)
    with crash_server.connect(DB) as conn:
        conn.execute("DELETE FROM bulk WHERE id > 1000")
    count = _count(crash_server)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            backups.import_store(platform, APP, STORE, file, replace=True)
        except BaseException as err:  # the server went away under it
            failure.append(err)

    worker = threading.Thread(target=run)
    holder = None
    worker.start()
    try:
        if moment == "restore":
            _wait_for(
                crash_server,
                "SELECT 1 FROM pg_stat_activity WHERE datname LIKE %s AND query ILIKE 'COPY%%'",
                (DB + "\\_restore\\_%",),
            )
        else:  # hold the swap's marker write, after its renames, inside its transaction
            _wait_for(
                crash_server,
                "SELECT 1 FROM pg_database WHERE datname LIKE %s AND shobj_description(oid, 'pg_database') LIKE %s",
                (DB + "\\_restore\\_%", "storekeeper:restoring%"),
            )
            holder = crash_server.connect()
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE pg_shdescription IN EXCLUSIVE MODE")
            _wait_for(
                crash_server,
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'ALTER DATABASE%%' "
                "OR wait_event_type = 'Lock' AND query ILIKE 'COMMENT ON DATABASE%%'",
                (),
            )
        crash_server.crash()
    finally:
        worker.join(timeout=60)
        if holder is not None:
            holder.close()
        crash_server.ensure_running()
        engines.clear()
    assert failure, "the import should have failed with the server gone"
    _intact(crash_server, count)
    assert len(_sides(crash_server)) == 1  # the restored database, marked "restoring"
    out = backups.import_store(platform, APP, STORE, file, replace=True)
    assert len(out.cleaned) == 1 and _sides(crash_server) == []
    assert _count(crash_server) == 300000
