"""Benchmark: time to a fresh, initialized test copy of a store with 10,000 rows.

Usage::

    python bench/copies.py [--json-out bench/results/copies.json] [--rounds N]

In one run, against one private PostgreSQL server (or
``STOREKEEPER_BENCH_DATABASE_URL``), for ``rows_app``'s stores (one table,
10,000 rows, built by their initializers):

* ``clone_file_copy`` — drop the test copy and clone it from its template
  with ``STRATEGY FILE_COPY``;
* ``clone_wal_log``   — the same with PostgreSQL 15's default ``WAL_LOG``;
* ``fresh_copy_with_spare`` — what a function-scoped ``persistent_store``
  fixture waits for: the spare cloned in the background during the previous
  test is renamed into place;
* ``reinitialize_sql`` — drop, create an empty database and run an
  initializer that inserts the rows with one ``INSERT … SELECT`` (the
  fastest initializer possible);
* ``reinitialize_orm`` — the same with the seeds' style of initializer
  (rows added through an ORM session);
* ``rollback``        — rollback mode's per-test cost: check a connection out
  of the pool, begin, bind a savepoint sessionmaker, roll back, return it.

Targets: the clone at least 5x faster than re-initializing; rollback mode
under 5 ms per test. Prints JSON on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform as pyplatform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import emit

DATABASE_URL_ENV = "STOREKEEPER_BENCH_DATABASE_URL"
APP, STORE = "rows_app", "data"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _times(fn: Callable[[], object], rounds: int) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p90_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.9))], 3),
        "min_ms": round(samples[0], 3),
        "rounds": rounds,
    }


def run(admin_url: str, rounds: int) -> dict[str, Any]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import sessionmaker

    from storekeeper import apps, engines, services, stores
    from storekeeper.backends import get_backend
    from storekeeper.config import load_config
    from storekeeper.platform import db, load_platform
    from storekeeper.stores.initializers import run_initializer
    from storekeeper.testing import copies
    from storekeeper.testing.fixtures import testing_mode
    from storekeeper.testing.names import template_name

    engine = db.make_engine(load_config().database_url)
    db.upgrade(engine)
    engine.dispose()
    platform = load_platform()
    u = make_url(admin_url)
    services.create_service(
        platform,
        name="bench",
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        username=u.username or "postgres",
        password=u.password,
    )
    apps.assign_service(platform, APP, STORE, "bench")
    apps.assign_service(platform, APP, "primary", "bench")
    apps.assign_service(platform, APP, "orm_data", "bench")
    results: dict[str, Any] = {}
    with testing_mode():
        target = copies.TESTING.target(platform, APP, STORE)
        orm_target = copies.TESTING.target(platform, APP, "orm_data")
        assert target is not None and orm_target is not None
        backend = get_backend("postgresql", target.spec)
        _log("building the templates (initializers: 10,000 rows)...")
        copies.ensure_template(backend, target, rebuild=True)
        for strategy, key in (("FILE_COPY", "clone_file_copy"), ("WAL_LOG", "clone_wal_log")):
            _log(f"cloning with {strategy} x{rounds}...")
            results[key] = _times(
                lambda s=strategy: copies.provision_copy(platform, target, fresh=False, refresh=True, strategy=s),
                rounds,
            )

        _log(f"fresh copies with a spare cloned in the background x{rounds}...")
        copies.provision_copy(platform, target, fresh=True)
        spare_samples = []
        for _ in range(rounds):
            copies.wait_for_spare(target)  # the test runs meanwhile; its spare gets ready
            start = time.perf_counter()
            copies.provision_copy(platform, target, fresh=True)
            spare_samples.append((time.perf_counter() - start) * 1000)
        copies.drop_spares()
        spare_samples.sort()
        results["fresh_copy_with_spare"] = {
            "median_ms": round(statistics.median(spare_samples), 3),
            "p90_ms": round(spare_samples[min(rounds - 1, int(rounds * 0.9))], 3),
            "min_ms": round(spare_samples[0], 3),
            "rounds": rounds,
        }

        def reinitializer(t: Any) -> Callable[[], None]:
            def reinitialize() -> None:
                with backend.store_lock(t.database) as conn:
                    backend.drop_database(conn, t.database, what="bench copy")
                    backend.create_database(conn, t.database, what="bench copy")
                run_initializer(backend, t, True)

            return reinitialize

        _log(f"re-initializing (one INSERT ... SELECT) x{rounds}...")
        results["reinitialize_sql"] = _times(reinitializer(target), rounds)
        _log(f"re-initializing (ORM session, the seeds' style) x{max(3, rounds // 3)}...")
        results["reinitialize_orm"] = _times(reinitializer(orm_target), max(3, rounds // 3))

        copies.provision_copy(platform, target, refresh=True)
        from storekeeper.discovery import app_class

        handle = stores.resolve(platform, app_class(APP), STORE, "database")  # type: ignore[arg-type]
        with handle.engine.connect():
            pass  # warm the pool, as a session-scoped copy would be

        def rollback_test() -> None:
            connection = handle.engine.connect()
            outer = connection.begin()
            maker = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
            with maker() as session:
                session.connection()  # the test's first statement opens the savepoint
            outer.rollback()
            connection.close()

        _log(f"rollback mode x{rounds * 10}...")
        results["rollback"] = _times(rollback_test, rounds * 10)
        with backend.connect() as conn:
            size = conn.execute("SELECT pg_database_size(%s)", (template_name(APP, STORE),)).fetchone()[0]  # type: ignore[index]
        engines.clear()
        copies.clean([target.spec], templates=True, packages=[APP])
    clone = min(results["clone_file_copy"]["median_ms"], results["clone_wal_log"]["median_ms"])
    sql_ratio = results["reinitialize_sql"]["median_ms"] / clone
    orm_ratio = results["reinitialize_orm"]["median_ms"] / clone
    spare_ratio = results["reinitialize_sql"]["median_ms"] / results["fresh_copy_with_spare"]["median_ms"]
    results["template_bytes"] = size
    results["ratios"] = {
        "reinitialize_sql_over_clone": round(sql_ratio, 2),
        "reinitialize_orm_over_clone": round(orm_ratio, 2),
        "reinitialize_sql_over_fresh_copy_with_spare": round(spare_ratio, 2),
    }
    results["faster_strategy"] = (
        "FILE_COPY" if results["clone_file_copy"]["median_ms"] <= results["clone_wal_log"]["median_ms"] else "WAL_LOG"
    )
    results["targets"] = {
        "clone_at_least_5x_faster_than_reinitialize_orm": {
            "target": 5.0,
            "value": round(orm_ratio, 2),
            "met": orm_ratio >= 5,
        },
        "clone_at_least_5x_faster_than_reinitialize_sql": {
            "target": 5.0,
            "value": round(sql_ratio, 2),
            "met": sql_ratio >= 5,
        },
        "fresh_copy_with_spare_at_least_5x_faster_than_reinitialize_sql": {
            "target": 5.0,
            "value": round(spare_ratio, 2),
            "met": spare_ratio >= 5,
        },
        "rollback_under_5_ms": {
            "target": 5.0,
            "value": results["rollback"]["median_ms"],
            "met": results["rollback"]["median_ms"] < 5,
        },
    }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="storekeeper-bench-")
    os.environ["STOREKEEPER_HOME"] = home
    from storekeeper.pgserver import LocalServer

    doc: dict[str, Any] = {
        "benchmark": "test copies",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": pyplatform.python_version(), "system": pyplatform.platform()},
    }
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        doc["results"] = run(url, args.rounds)
    else:
        with LocalServer.temporary(fast=False) as server:
            doc["machine"]["postgresql"] = server.version()
            doc["results"] = run(server.url(), args.rounds)
    emit(doc, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
