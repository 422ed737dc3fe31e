"""Benchmark: export + import and clone of a store holding N rows, beside raw pg_dump/pg_restore and TEMPLATE.

Usage::

    python bench/backups.py [--rows 1000000] [--json-out bench/results/backups.json]

In one run, against one private PostgreSQL server (or ``STOREKEEPER_BENCH_DATABASE_URL``),
my_first_app's spatial store ``spatial_db`` gets a table ``points`` of ``--rows`` rows
(an integer with a b-tree index, a PostGIS point with a GiST index). Then, each once,
interleaved so both sides see the same machine:

* ``export``      — ``storekeeper stores export`` (pg_dump -Fc streamed into the file,
  hashed, manifest) beside ``raw_dump``: ``pg_dump -Fc -f FILE`` of the same database;
* ``import``      — ``storekeeper stores import --replace`` (checksum, restore into a new
  spatial database as the store's role, swap, drop of the previous) beside
  ``raw_restore``: ``createdb`` + ``pg_restore --no-owner --no-privileges`` of the raw dump
  into an empty database as the superuser;
* ``clone``       — ``storekeeper stores clone`` (template copy, role hand-over) beside
  ``raw_template``: ``CREATE DATABASE … TEMPLATE``.

Each pair is timed ``--rounds`` times (default 3), interleaved; medians are reported with
every sample. Targets: export and import each at most 1.1x their raw counterpart. Prints
JSON on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import emit

DATABASE_URL_ENV = "STOREKEEPER_BENCH_DATABASE_URL"
APP, STORE, DB = "my_first_app", "spatial_db", "my_first_app_spatial_db"
RAW_DB, RAW_CLONE = "skbench_raw_restore", "skbench_raw_clone"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return round(time.perf_counter() - start, 3)


def _pairs(out: dict[str, Any], raw_name: str, raw: Any, ours_name: str, ours: Any, rounds: int, between: Any) -> None:
    """Time ``raw`` and ``ours`` ``rounds`` times each, interleaved; record every sample and the medians."""
    samples: dict[str, list[float]] = {raw_name: [], ours_name: []}
    for _ in range(rounds):
        for name, fn in ((raw_name, raw), (ours_name, ours)):
            samples[name].append(_timed(fn))
            between()
    for name, values in samples.items():
        out[name + "_samples"] = values
        out[name] = statistics.median(values)


def run(admin_url: str, rows: int, work: Path, rounds: int) -> dict[str, Any]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from storekeeper import apps, services, stores
    from storekeeper.config import load_config
    from storekeeper.platform import db, load_platform
    from storekeeper.stores import backups, dumps

    db.upgrade(db.make_engine(load_config().database_url))
    platform = load_platform()
    u = make_url(admin_url)
    params = {"host": u.host, "port": u.port, "user": u.username, "password": u.password}
    services.create_service(
        platform,
        name="bench",
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        username=u.username or "postgres",
        password=u.password,
    )
    for setting in ("example_db", "spatial_db", "primary"):
        apps.assign_service(platform, APP, setting, "bench")
    with psycopg.connect(autocommit=True, dbname="postgres", **params) as admin:  # type: ignore[arg-type]
        for name in (RAW_DB, RAW_CLONE, "my_first_app_bench_clone"):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    result = stores.sync_stores(platform, [APP], database=STORE, refresh=True)[0]
    assert result.ok, result.error
    _log(f"filling {DB} with {rows:,} rows")
    with psycopg.connect(autocommit=True, dbname=DB, **params) as conn:  # type: ignore[arg-type]
        conn.execute("CREATE TABLE points (id bigserial PRIMARY KEY, value integer, geom geometry(Point, 4326))")
        conn.execute(
            "INSERT INTO points (value, geom) SELECT g %% 1000, "
            "ST_SetSRID(ST_MakePoint(-180 + (g %% 360), -90 + (g %% 180)), 4326) FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CREATE INDEX points_value ON points (value)")
        conn.execute("CREATE INDEX points_geom ON points USING gist (geom)")
        conn.execute("VACUUM ANALYZE points")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    with psycopg.connect(dbname="postgres", **params) as probe:  # type: ignore[arg-type]
        server_major = probe.info.server_version // 10000
    pg_dump, _ = dumps.find_program("pg_dump", server_major)
    pg_restore, _ = dumps.find_program("pg_restore", server_major)
    env = {**os.environ, "PGPASSWORD": u.password or ""}  # the bench's own superuser, not a store's
    conn_args = [f"--host={u.host}", f"--port={u.port}", f"--username={u.username}"]
    out: dict[str, Any] = {"rows": rows, "database_bytes": size}
    skfile, rawfile = work / "store.skbackup", work / "raw.dump"

    def raw_dump() -> None:
        subprocess.run([str(pg_dump), "-Fc", f"--file={rawfile}", *conn_args, f"--dbname={DB}"], env=env, check=True)

    def raw_restore() -> None:
        with psycopg.connect(autocommit=True, dbname="postgres", **params) as admin:  # type: ignore[arg-type]
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(RAW_DB)))
        subprocess.run(
            [str(pg_restore), "--no-owner", "--no-privileges", *conn_args, f"--dbname={RAW_DB}", str(rawfile)],
            env=env,
            check=True,
        )

    def drop(name: str) -> None:
        with psycopg.connect(autocommit=True, dbname="postgres", **params) as admin:  # type: ignore[arg-type]
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def tidy() -> None:
        drop(RAW_DB)
        drop(RAW_CLONE)
        if stores.store_exists(platform, APP, "bench_clone"):
            stores.drop_store(platform, APP, "bench_clone")

    def export() -> None:
        skfile.unlink(missing_ok=True)
        backups.export_store(platform, APP, STORE, skfile)

    def template() -> None:
        with psycopg.connect(autocommit=True, dbname="postgres", **params) as admin:  # type: ignore[arg-type]
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(RAW_CLONE), sql.Identifier(DB))
            )

    _log("export / raw pg_dump")
    _pairs(out, "raw_dump_s", raw_dump, "export_s", export, rounds, lambda: None)
    out["dump_bytes"] = rawfile.stat().st_size
    out["file_bytes"] = skfile.stat().st_size
    _log("import / raw pg_restore")
    _pairs(
        out,
        "raw_restore_s",
        raw_restore,
        "import_s",
        lambda: backups.import_store(platform, APP, STORE, skfile, replace=True),
        rounds,
        tidy,
    )
    _log("clone / raw TEMPLATE")
    _pairs(
        out,
        "raw_template_s",
        template,
        "clone_s",
        lambda: backups.clone_store(platform, APP, STORE, "bench_clone"),
        rounds,
        tidy,
    )
    out["export_ratio"] = round(out["export_s"] / out["raw_dump_s"], 3)
    out["import_ratio"] = round(out["import_s"] / out["raw_restore_s"], 3)
    out["clone_ratio"] = round(out["clone_s"] / out["raw_template_s"], 3)
    out["targets"] = {"export_ratio": "<= 1.1", "import_ratio": "<= 1.1"}
    out["met"] = {"export_ratio": out["export_ratio"] <= 1.1, "import_ratio": out["import_ratio"] <= 1.1}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="storekeeper-bench-")
    os.environ["STOREKEEPER_HOME"] = home
    from storekeeper.pgserver import LocalServer

    doc: dict[str, Any] = {
        "benchmark": "backups",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": pyplatform.python_version(), "system": pyplatform.platform()},
    }
    with tempfile.TemporaryDirectory(prefix="storekeeper-bench-files-") as work:
        url = os.environ.get(DATABASE_URL_ENV)
        if url:
            doc["results"] = run(url, args.rows, Path(work), args.rounds)
        else:
            with LocalServer.temporary(fast=True) as server:
                doc["machine"]["postgresql"] = server.version()
                doc["results"] = run(server.url(), args.rows, Path(work), args.rounds)
    emit(doc, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
