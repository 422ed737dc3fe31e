"""Several real processes working on the same store create it once and run first_time=True once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg

from storekeeper import apps, audit, discovery, stores
from storekeeper.platform import Platform
from tests.conftest import INSTALLED_APPS, storekeeper_exe
from tests.core.conftest import APP, database_exists, first_time_runs, rows, setting_record

DELAY = "0.5"


def _env(sk_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLAKY_APP_FAIL",)}
    return {**env, "STOREKEEPER_HOME": str(sk_home), "FLAKY_APP_DELAY": DELAY, **extra}


def _wait_all(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append((proc.returncode, out, err))
    return done


def test_parallel_syncstores_processes_run_first_time_initializer_once(
    platform: Platform, flaky_app: str, sk_home: Path, pg_admin_url: str
) -> None:
    env = _env(sk_home)
    procs = [
        subprocess.Popen(
            [storekeeper_exe(), "syncstores", "flaky_app"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = _wait_all(procs)
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    runs = first_time_runs(pg_admin_url, "flaky_app_db", "runs")
    assert runs.count(True) == 1
    assert len(runs) == 4  # every process ran the initializer; only the first saw an empty store
    assert runs[0] is True
    assert rows(pg_admin_url, "flaky_app_db", "SELECT count(DISTINCT pid) FROM runs") == [(4,)]
    assert setting_record(platform, "flaky_app", "db")["state"] == "initialized"  # type: ignore[index]


CREATE_SCRIPT = """
from my_first_app.app import App
assert App.create_persistent_store("shared", "primary", initializer="sample_apps.flaky.init_db") is True
"""


def test_parallel_create_persistent_store_processes_create_the_store_once(
    platform: Platform, my_first_app: type, sk_home: Path, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    env = _env(sk_home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = _wait_all(procs)
    assert [code for code, _, _ in results] == [0, 0, 0], results
    runs = first_time_runs(pg_admin_url, "my_first_app_shared", "runs")
    assert runs.count(True) == 1
    assert len(runs) == 3
    assert rows(pg_admin_url, "my_first_app_shared", "SELECT count(DISTINCT pid) FROM runs") == [(3,)]
    record = setting_record(platform, APP, "shared")
    assert record["dynamic"] and record["state"] == "initialized"  # type: ignore[index]
    assert database_exists(admin_conn, "my_first_app_shared")


def test_parallel_syncstores_after_a_failure_retry_from_empty_once(
    platform: Platform, flaky_app: str, sk_home: Path, pg_admin_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    failing = subprocess.run(
        [storekeeper_exe(), "syncstores", "flaky_app"],
        env=_env(sk_home, FLAKY_APP_FAIL=str(flag), FLAKY_APP_DELAY="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failing.returncode != 0
    assert "simulated failure" in failing.stdout + failing.stderr
    flag.unlink()
    procs = [
        subprocess.Popen(
            [storekeeper_exe(), "syncstores", "flaky_app"],
            env=_env(sk_home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = _wait_all(procs)
    assert [code for code, _, _ in results] == [0, 0, 0], results
    runs = first_time_runs(pg_admin_url, "flaky_app_db", "runs")
    assert runs == [True, False, False]


def _race(work: Callable[[], object], n: int = 6) -> list[str]:
    """Run ``work`` in n threads released at the same instant; return the errors."""
    errors: list[str] = []
    barrier = threading.Barrier(n)

    def run() -> None:
        try:
            barrier.wait()
            work()
        except Exception as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_simultaneous_discovery_on_a_fresh_home_registers_each_app_once(platform: Platform) -> None:
    assert _race(lambda: discovery.discover(platform)) == []
    found, _ = apps.list_apps(platform)
    assert sorted(a.package for a in found) == sorted(INSTALLED_APPS)
    assert len([e for e in audit.list_events(platform, action="app.register")]) == len(INSTALLED_APPS)


def test_simultaneous_creates_of_a_new_dynamic_store_all_succeed_and_initialize_once(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    def create() -> None:
        stores.create_store(platform, APP, "racy", "primary", initializer="sample_apps.flaky.init_db")

    assert _race(create) == []
    assert first_time_runs(pg_admin_url, "my_first_app_racy", "runs").count(True) == 1
    assert [s.name for s in apps.list_settings(platform, APP)].count("racy") == 1
