"""Eight ``storekeeper syncstores`` processes on the same app at once, in one home.

Each store's database must be created once, by one process, and its first-time
initialization run once: every process runs the initializer (each logs a row in
``init_log`` with its pid), exactly one of them with ``first_time=True``, the
first. Every process must exit 0. The initializer sleeps a little in the server
so the processes overlap.

Figures: tried (processes) / failed (processes that did not exit 0) / lost (stores
created more or less than once, or initialized first-time more or less than once).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from storekeeper.platform import Platform
from tests.conftest import storekeeper_exe
from tests.reliability import crash_app
from tests.reliability.conftest import (
    APP,
    Figures,
    Home,
    admin_connect,
    assign_crash_app,
    register_service,
    store_check,
    wipe,
)

pytestmark = pytest.mark.slow

PROCESSES = 8


def test_eight_processes_syncing_one_app_create_each_store_once(
    platform: Platform, sk_home: Path, installed: Path, pg_admin_url: str, postgis_available: bool, tmp_path: Path
) -> None:
    wipe(pg_admin_url)
    register_service(platform, "local", pg_admin_url)
    statics = assign_crash_app(platform, "local", spatial=postgis_available)
    home = Home(sk_home, installed, platform)
    env = home.env(**{crash_app.DELAY_ENV: "0.2"})
    logs = [tmp_path / f"sync-{i}.err" for i in range(PROCESSES)]
    procs = []
    for log in logs:
        with log.open("wb") as err:
            procs.append(
                subprocess.Popen(
                    [storekeeper_exe(), "syncstores", APP, "--json"], stdout=subprocess.PIPE, stderr=err, env=env
                )
            )
    outputs = [proc.communicate(timeout=300)[0].decode() for proc in procs]
    figures = Figures(f"{PROCESSES} processes syncing one app", tried=PROCESSES, extra={"stores": len(statics)})
    created: dict[str, list[int]] = {s: [] for s in statics}
    for i, (proc, out, log) in enumerate(zip(procs, outputs, logs, strict=True)):
        if proc.returncode != 0:
            figures.failed += 1
            figures.problems.append(f"process {i} exit {proc.returncode}: {out[-500:]} {log.read_text()[-500:]}")
            continue
        for result in json.loads(out)["results"]:
            if result["action"] in ("created", "recreated"):
                created[result["store"]].append(i)
    try:
        with admin_connect(pg_admin_url) as conn:
            for name in statics:
                database = f"{APP}_{name}"
                runs: list[tuple[bool, int]] = []
                why = store_check(pg_admin_url, conn, database, f"{APP}/{name}")
                if why is None:
                    with admin_connect(pg_admin_url, database) as db:
                        runs = [(r[0], r[1]) for r in db.execute("SELECT first_time, pid FROM init_log ORDER BY id")]
                if why is None and len(created[name]) != 1:
                    why = f"created by {len(created[name])} processes ({created[name]})"
                if why is None and (len(runs) != PROCESSES or len({pid for _, pid in runs}) != PROCESSES):
                    why = f"{len(runs)} initializer runs by {len({p for _, p in runs})} processes (want {PROCESSES})"
                if why is not None:
                    figures.lost += 1
                    figures.problems.append(f"{name}: {why}")
        figures.check()
    finally:
        wipe(pg_admin_url)
