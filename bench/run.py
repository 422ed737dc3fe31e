"""storekeeper's core benchmarks: one run against one PostgreSQL server, one JSON document.

Usage::

    python bench/run.py [--json-out bench/results/core.json] [--quick]

The server is a private throwaway one (``LocalServer.temporary(fast=True)``)
unless ``STOREKEEPER_BENCH_DATABASE_URL`` names a superuser URL of a running
server. The storekeeper home is a temporary directory (SQLite platform
database), removed at the end; other ``STOREKEEPER_*`` variables are ignored so
every run uses the defaults.

Figures (see BENCHMARKS.md for what each one means):

1. ``lookup``      warm per-call latency of ``App.get_persistent_store_database``
                   (engine, ``as_url``, ``as_sessionmaker``) beside a dict lookup;
2. ``session``     Session + ``SELECT 1`` + close through storekeeper's sessionmaker
                   beside one bound to a raw ``create_engine(url)``;
3. ``connections`` the store's server connections after 10,000 lookups and
                   1,000 round trips (and under concurrent load) beside the pool size;
4. ``refresh``     ``sync_stores(platform, ["bench_app"], refresh=True)`` (10 stores)
                   beside the same work done by hand on psycopg;
5. ``sync_process`` wall time of a ``storekeeper syncstores bench_app`` process with
                   nothing to create, beside the time to import its dependencies (the
                   floor: a process importing only the libraries it needs), and of a
                   ``storekeeper --help`` process.

Progress goes to stderr; the JSON document goes to stdout (and ``--json-out``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchlib import admin_params, emit, machine_info

#: Env var naming a superuser URL of an existing server (skips starting a private one).
DATABASE_URL_ENV = "STOREKEEPER_BENCH_DATABASE_URL"

SERVICE = "bench"
APP = "my_first_app"
STORE = "example_db"
STORE_DB = f"{APP}_{STORE}"
BENCH_APP = "bench_app"
BENCH_STORES = [f"s{i:02d}" for i in range(10)]
FLOOR_DBS = [f"skbench_floor_{s}" for s in BENCH_STORES]
#: The table bench_app's initializer makes (sample_apps.bench.init_store); the floor makes the same.
CREATE_TABLE = "CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text)"
INSERT_ROW = "INSERT INTO items (name) VALUES ('first')"

TARGETS = {
    "lookup_p50_us_max": 2.0,
    "session_roundtrip_ratio_max": 1.15,
    "connections_max": "pool_size",
    "refresh_ratio_max": 1.2,
    "sync_process_s_max": 0.8,
    "help_process_s_max": 0.35,
    # Asking the servers whether stores are ready (one query per service) on every app listing.
    "listing_server_check_ms_max": 10.0,
}

#: What a `storekeeper syncstores` process cannot avoid importing: the CLI (Typer, which validates
#: parameters with pydantic; Rich), the configuration (pydantic-settings, YAML), the platform
#: database and the app's models (SQLAlchemy ORM, SQLite) and the stores' driver (psycopg,
#: SQLAlchemy's PostgreSQL dialect), and the secrets' cipher.
FLOOR_IMPORTS = (
    "typer",
    "typer._adapters",
    "rich.console",
    "rich.table",
    "pydantic_settings",
    "yaml",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "psycopg",
    "cryptography.fernet",
)

#: How much work each figure does, full and --quick.
PLANS = {
    "full": {
        "lookup_rounds": 2000,  # batches per variant, interleaved
        "lookup_batch": 1000,  # calls per batch
        "revalidations": 50,
        "roundtrips": 1000,  # per path (storekeeper and raw), interleaved
        "connections_lookups": 10_000,
        "concurrent_roundtrips": 1000,
        "refresh_repeats": 3,
        "process_repeats": 5,
    },
    "quick": {
        "lookup_rounds": 200,
        "lookup_batch": 1000,
        "revalidations": 10,
        "roundtrips": 1000,
        "connections_lookups": 10_000,
        "concurrent_roundtrips": 1000,
        "refresh_repeats": 1,
        "process_repeats": 2,
    },
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    return {
        "p50": round(statistics.median(values), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "mean": round(statistics.fmean(values), digits),
        "n": len(values),
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


# -- machine ------------------------------------------------------------------------


# -- server and home ----------------------------------------------------------------


@contextlib.contextmanager
def database_server() -> Iterator[tuple[str, str]]:
    """Yield (superuser SQLAlchemy URL, description): from the env or a private server."""
    from_env = os.environ.get(DATABASE_URL_ENV)
    if from_env:
        from sqlalchemy.engine import make_url

        url = make_url(from_env.replace("postgres://", "postgresql://", 1))
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        yield url.render_as_string(hide_password=False), f"${DATABASE_URL_ENV}"
        return
    from storekeeper.pgserver import LocalServer

    log("starting a private PostgreSQL server (LocalServer.temporary(fast=True))")
    with LocalServer.temporary(fast=True) as server:
        yield server.url(), "private LocalServer.temporary(fast=True): fsync, synchronous_commit, full_page_writes off"


def drop_databases(params: dict[str, Any], names: Sequence[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **params) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def bench_home() -> Iterator[Path]:
    """Set $STOREKEEPER_HOME to a fresh temporary home with a migrated platform database."""
    for var in [v for v in os.environ if v.startswith("STOREKEEPER_") and v != DATABASE_URL_ENV]:
        del os.environ[var]
    tmp = Path(tempfile.mkdtemp(prefix="storekeeper-bench-home-"))
    home = tmp / "home"
    os.environ["STOREKEEPER_HOME"] = str(home)
    from storekeeper import discovery, engines
    from storekeeper.config import load_config
    from storekeeper.platform import db, reset_platform

    engine = db.make_engine(load_config().database_url)
    db.upgrade(engine)
    engine.dispose()
    try:
        yield home
    finally:
        engines.clear()
        discovery.forget()
        reset_platform()
        shutil.rmtree(tmp, ignore_errors=True)


def check_results(results: Sequence[Any], what: str) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{what} failed: " + "; ".join(f"{r.app}/{r.store}: {r.error}" for r in failed))


# -- 1. warm lookups ------------------------------------------------------------------


def bench_lookup(app_cls: type, plan: dict[str, int]) -> dict[str, Any]:
    """Time batches of calls (timeit inlines the statement; gc off) and divide per call."""
    from storekeeper import engines

    variants = {
        "engine": f"App.get_persistent_store_database({STORE!r})",
        "as_url": f"App.get_persistent_store_database({STORE!r}, as_url=True)",
        "as_sessionmaker": f"App.get_persistent_store_database({STORE!r}, as_sessionmaker=True)",
        "dict_lookup": f"d[{STORE!r}]",
        "dict_get_call": f"d.get({STORE!r})",
        "empty_loop": "pass",
    }
    handle = engines.DATABASES[(APP, STORE)]
    namespace = {"App": app_cls, "d": {STORE: handle.engine, "other": None}}
    timers = {
        name: timeit.Timer(stmt, globals=namespace, timer=time.perf_counter_ns) for name, stmt in variants.items()
    }
    batch = plan["lookup_batch"]
    for timer in timers.values():  # warm up
        timer.timeit(batch)
    per_call: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(plan["lookup_rounds"]):
        for name, timer in timers.items():
            per_call[name].append(timer.timeit(batch) / batch)  # ns per call
    out: dict[str, Any] = {
        "unit": "ns per call",
        "method": f"{plan['lookup_rounds']} batches x {batch} calls per variant, interleaved; "
        "timeit (statement inlined in the loop, gc disabled); per-call = batch time / calls",
    }
    for name, values in per_call.items():
        out[name] = summary(values, 1)
    out["engine_over_dict_p50"] = ratio(out["engine"]["p50"], out["dict_lookup"]["p50"])

    # The cold side: a lookup whose handle has passed engines.revalidate_seconds asks the platform database.
    costs = []
    for _ in range(plan["revalidations"]):
        engines.DATABASES[(APP, STORE)].expires = 0.0
        t0 = time.perf_counter_ns()
        app_cls.get_persistent_store_database(STORE)
        costs.append((time.perf_counter_ns() - t0) / 1000)
    out["revalidation_call_us"] = summary(costs, 1)
    return out


# -- 2. session round trips -------------------------------------------------------------


def bench_session(app_cls: type, pool_size: int, plan: dict[str, int]) -> tuple[dict[str, Any], Any]:
    """Interleave storekeeper and raw-engine round trips (ABBA order), timing each one."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import sessionmaker

    url = app_cls.get_persistent_store_database(STORE, as_url=True)
    raw_engine = create_engine(url, pool_size=pool_size, max_overflow=0)
    raw_sessions = sessionmaker(bind=raw_engine)
    select_one = text("SELECT 1")

    def storekeeper_trip() -> None:
        # As an app would write it: look the sessionmaker up, open a session, query, close.
        with app_cls.get_persistent_store_database(STORE, as_sessionmaker=True)() as session:
            session.execute(select_one).scalar_one()

    def raw_trip() -> None:
        with raw_sessions() as session:
            session.execute(select_one).scalar_one()

    for _ in range(50):  # warm both pools and statement caches
        storekeeper_trip()
        raw_trip()
    times: dict[str, list[float]] = {"storekeeper": [], "raw_engine": []}
    pairs = [("storekeeper", storekeeper_trip), ("raw_engine", raw_trip)]
    clock = time.perf_counter_ns
    gc.collect()
    for i in range(plan["roundtrips"]):
        for name, trip in pairs if i % 2 == 0 else reversed(pairs):
            t0 = clock()
            trip()
            times[name].append((clock() - t0) / 1000)
    sk, raw = summary(times["storekeeper"], 1), summary(times["raw_engine"], 1)
    out = {
        "unit": "us per round trip",
        "method": f"{plan['roundtrips']} round trips per path, interleaved ABBA; each timed alone; "
        f"raw engine: create_engine(url, pool_size={pool_size}, max_overflow=0)",
        "storekeeper": sk,
        "raw_engine": raw,
        "ratio_p50": ratio(sk["p50"], raw["p50"]),
        "ratio_p99": ratio(sk["p99"], raw["p99"]),
        "ratio_mean": ratio(sk["mean"], raw["mean"]),
    }
    return out, raw_engine


# -- 3. server connections --------------------------------------------------------------


def store_connections(params: dict[str, Any]) -> dict[str, int]:
    """Count server sessions on the store's database, by who opened them."""
    import psycopg

    with psycopg.connect(autocommit=True, **params) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1", (STORE_DB,)
        ).fetchall()
    counts = {"storekeeper": 0, "other": 0}
    for app_name, n in rows:
        counts["storekeeper" if (app_name or "").startswith("storekeeper:") else "other"] += n
    counts["total"] = counts["storekeeper"] + counts["other"]
    return counts


def bench_connections(
    app_cls: type, params: dict[str, Any], pool_size: int, raw_engine: Any, plan: dict[str, int]
) -> dict[str, Any]:
    from sqlalchemy import text

    for _ in range(plan["connections_lookups"]):
        app_cls.get_persistent_store_database(STORE)
        app_cls.get_persistent_store_database(STORE, as_sessionmaker=True)
    after_sequential = store_connections(params)
    raw_engine.dispose()

    # Concurrent load: four times as many threads as the pool has connections.
    threads = 4 * pool_size
    select_one = text("SELECT 1")
    stop = threading.Event()
    peak = {"storekeeper": 0, "total": 0}

    def sample() -> None:
        while not stop.is_set():
            c = store_connections(params)
            peak["storekeeper"] = max(peak["storekeeper"], c["storekeeper"])
            peak["total"] = max(peak["total"], c["total"])
            time.sleep(0.005)

    def trips(n: int) -> None:
        for _ in range(n):
            with app_cls.get_persistent_store_database(STORE, as_sessionmaker=True)() as session:
                session.execute(select_one).scalar_one()
                time.sleep(0.0005)  # hold the connection a little so the threads contend

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    per_thread = plan["concurrent_roundtrips"] // threads
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(trips, [per_thread] * threads))
    stop.set()
    sampler.join()
    after_concurrent = store_connections(params)
    return {
        "pool_size": pool_size,
        "method": f"pg_stat_activity WHERE datname = '{STORE_DB}'; storekeeper's sessions carry "
        "application_name 'storekeeper:<app>', the raw engine's do not",
        "after_lookups_and_roundtrips": {
            "lookups": plan["connections_lookups"] * 2,
            "roundtrips_per_path": plan["roundtrips"],
            "storekeeper": after_sequential["storekeeper"],
            "raw_engine": after_sequential["other"],
        },
        "concurrent": {
            "threads": threads,
            "roundtrips": per_thread * threads,
            "peak_storekeeper": peak["storekeeper"],
            "after_storekeeper": after_concurrent["storekeeper"],
        },
    }


# -- 4. refresh -------------------------------------------------------------------------


def floor_refresh(params: dict[str, Any]) -> None:
    """The same work as a 10-store refresh, by hand on psycopg 3."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **params) as admin:
        for name in FLOOR_DBS:
            ident = sql.Identifier(name)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
            with psycopg.connect(**{**params, "dbname": name}) as conn:
                conn.execute(CREATE_TABLE)
                conn.execute(INSERT_ROW)
                conn.commit()


def bench_refresh(platform: Any, params: dict[str, Any], plan: dict[str, int]) -> dict[str, Any]:
    from storekeeper import stores

    check_results(stores.sync_stores(platform, [BENCH_APP]), "first sync of bench_app")
    floor_refresh(params)  # so the timed floor runs drop existing databases too
    sync_times, floor_times = [], []
    for i in range(plan["refresh_repeats"]):
        order = ["sync", "floor"] if i % 2 == 0 else ["floor", "sync"]
        for what in order:
            t0 = time.perf_counter()
            if what == "sync":
                results = stores.sync_stores(platform, [BENCH_APP], refresh=True)
                elapsed = time.perf_counter() - t0
                check_results(results, "refresh of bench_app")
                if sorted(r.store for r in results) != BENCH_STORES or any(r.first_time is not True for r in results):
                    raise SystemExit(f"refresh did not recreate the 10 stores: {results}")
                sync_times.append(elapsed)
            else:
                floor_refresh(params)
                floor_times.append(time.perf_counter() - t0)
    sync_s, floor_s = statistics.median(sync_times), statistics.median(floor_times)
    return {
        "unit": "s for 10 stores",
        "method": f"median of {plan['refresh_repeats']}, alternating; sync = stores.sync_stores(platform, "
        "['bench_app'], refresh=True); floor = one psycopg admin connection, per store DROP ... WITH (FORCE), "
        "CREATE DATABASE, connect, CREATE TABLE, INSERT, commit",
        "sync_refresh_s": round(sync_s, 3),
        "floor_s": round(floor_s, 3),
        "ratio": ratio(sync_s, floor_s),
        "overhead_per_store_ms": round((sync_s - floor_s) / len(BENCH_STORES) * 1000, 1),
        "sync_runs_s": [round(t, 3) for t in sync_times],
        "floor_runs_s": [round(t, 3) for t in floor_times],
    }


# -- 6. listing apps with the servers' word on readiness --------------------------------------


def bench_listing(platform: Any, plan: dict[str, int]) -> dict[str, Any]:
    """What asking the servers costs each app listing (the portal's home page), records alone as the floor."""
    from storekeeper import apps, stores

    check_results(stores.sync_stores(platform, [BENCH_APP]), "sync of bench_app")
    with_check, records_only, whole = [], [], []
    for i in range(plan["process_repeats"] * 20):
        for what in ["check", "records"] if i % 2 == 0 else ["records", "check"]:
            t0 = time.perf_counter()
            stores.list_stores(platform, check_server=what == "check", discover=False, sizes=False)
            (with_check if what == "check" else records_only).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        infos, _ = apps.list_apps(platform)
        whole.append(time.perf_counter() - t0)
        info = next(a for a in infos if a.package == BENCH_APP)
        if not all(s.ready for s in info.settings if s.kind == "database"):
            raise SystemExit(f"bench_app's stores are not ready after its sync: {info}")
    check_ms, floor_ms = statistics.median(with_check) * 1000, statistics.median(records_only) * 1000
    return {
        "unit": "ms per listing of every store (bench_app: 10 stores on one service)",
        "method": "median, alternating; check = stores.list_stores(platform, check_server=True, sizes=False) (records + one "
        "query per service); floor = the same with check_server=False (records alone); list_apps = "
        "apps.list_apps(platform), what the portal's home page calls (discovery, records, the check)",
        "list_stores_checked_ms": round(check_ms, 2),
        "records_only_ms": round(floor_ms, 2),
        "server_check_ms": round(check_ms - floor_ms, 2),
        "list_apps_ms": round(statistics.median(whole) * 1000, 2),
    }


# -- 5. the sync process ------------------------------------------------------------------


def storekeeper_exe() -> str:
    exe = Path(sys.executable).with_name("storekeeper")
    if exe.exists():
        return str(exe)
    return shutil.which("storekeeper") or "storekeeper"


def timed_run(args: Sequence[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=300)
    return time.perf_counter() - t0, proc


def children_cpu_s() -> float:
    """Return the user + system CPU time of the waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_importtime(stderr: str) -> dict[str, Any]:
    """Sum the cumulative time of top-level imports; group self time by top-level package."""
    total_us = 0
    by_package: dict[str, int] = defaultdict(int)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        try:
            self_text, cumulative_text, name = line[len("import time:") :].split("|", 2)
            self_us, cumulative_us = int(self_text), int(cumulative_text)
        except ValueError:
            continue
        if len(name) - len(name.lstrip(" ")) == 1:  # top level: one space after the bar
            total_us += cumulative_us
        by_package[name.strip().split(".")[0]] += self_us
    top = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:12]
    return {"total_ms": round(total_us / 1000, 1), "top_packages_self_ms": {k: round(v / 1000, 1) for k, v in top}}


def median_run(args: Sequence[str], env: dict[str, str], repeats: int) -> tuple[float, list[float], float]:
    """Run a command ``repeats`` times; return median wall time, the wall times, median CPU time."""
    times, cpu = [], []
    for _ in range(repeats):
        cpu0 = children_cpu_s()
        elapsed, proc = timed_run(args, env)
        cpu.append(children_cpu_s() - cpu0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        times.append(elapsed)
    return statistics.median(times), times, statistics.median(cpu)


def bench_sync_process(platform: Any, home: Path, plan: dict[str, int]) -> dict[str, Any]:
    from storekeeper import stores

    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREKEEPER_")}
    env["STOREKEEPER_HOME"] = str(home)
    # Time what an ordinary install runs: with a bytecode cache. A private cache
    # directory (filled by the warm-up run) keeps this independent of
    # PYTHONDONTWRITEBYTECODE and of whether src/ may be written to.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home.parent / "pycache")
    exe = storekeeper_exe()
    sync_cmd = [exe, "syncstores", BENCH_APP]
    repeats = plan["process_repeats"]

    # Warm the page cache and .pyc files, and check that nothing needs creating.
    _, proc = timed_run(sync_cmd, env)
    if proc.returncode != 0 or "created" in proc.stdout:
        raise SystemExit(
            f"storekeeper syncstores {BENCH_APP} did not find its stores ready:\n{proc.stdout}{proc.stderr}"
        )
    sync_s, sync_runs, sync_cpu_s = median_run(sync_cmd, env, repeats)
    timed_run([exe, "--help"], env)  # warm-up
    help_s, help_runs, _ = median_run([exe, "--help"], env, repeats)
    import_s, _, import_cpu_s = median_run([sys.executable, "-c", "import storekeeper.cli.main"], env, repeats)
    startup_s, _, _ = median_run([sys.executable, "-c", "pass"], env, repeats)
    # The floor no change to storekeeper can go below: Python plus the libraries the command needs.
    floor_cmd = [sys.executable, "-c", f"import {', '.join(FLOOR_IMPORTS)}"]
    timed_run(floor_cmd, env)  # warm-up: bytecode into the private cache
    floor_s, _, _ = median_run(floor_cmd, env, repeats)
    _, proc = timed_run([sys.executable, "-X", "importtime", "-c", "import storekeeper.cli.main"], env)
    cli_imports = parse_importtime(proc.stderr)
    # Every import the real process does, including the lazy ones made while syncing.
    _, proc = timed_run([sys.executable, "-X", "importtime", exe, "syncstores", BENCH_APP], env)
    process_imports = parse_importtime(proc.stderr)

    inproc = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        results = stores.sync_stores(platform, [BENCH_APP])
        inproc.append(time.perf_counter() - t0)
        check_results(results, "in-process sync of bench_app")
    return {
        "unit": "s",
        "method": f"median of {repeats} runs of `{Path(exe).name} syncstores {BENCH_APP}` (10 stores, nothing to "
        "create; every initializer runs with first_time=False), after one warm-up run; bytecode cached "
        "(private PYTHONPYCACHEPREFIX); importtime = sum of the cumulative time of top-level imports",
        "sync_process_s": round(sync_s, 3),
        "sync_process_runs_s": [round(t, 3) for t in sync_runs],
        "sync_process_cpu_s": round(sync_cpu_s, 3),
        "help_process_s": round(help_s, 3),
        "help_process_runs_s": [round(t, 3) for t in help_runs],
        "python_startup_s": round(startup_s, 3),
        "dependency_floor_s": round(floor_s, 3),
        "dependency_floor_imports": list(FLOOR_IMPORTS),
        "sync_process_over_floor_s": round(sync_s - floor_s, 3),
        "import_cli_main_wall_s": round(import_s, 3),
        "import_cli_main_cpu_s": round(import_cpu_s, 3),
        "import_cli_main_importtime_ms": cli_imports["total_ms"],
        "import_cli_main_top_packages_self_ms": cli_imports["top_packages_self_ms"],
        "process_imports_importtime_ms": process_imports["total_ms"],
        "process_imports_top_packages_self_ms": process_imports["top_packages_self_ms"],
        "sync_in_process_s": round(statistics.median(inproc), 3),
    }


# -- main ---------------------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    # Other work on the machine skews every figure: record the load average around the run.
    loadavg_at_start = round(os.getloadavg()[0], 2)
    plan = PLANS["quick" if quick else "full"]
    started = time.perf_counter()
    with database_server() as (url, server_kind), bench_home() as home:
        import psycopg

        from storekeeper import apps, services, stores
        from storekeeper.platform import load_platform
        from storekeeper.services import DEFAULT_POOL_SIZE

        params = admin_params(url)
        ours = [STORE_DB, *(f"{BENCH_APP}_{s}" for s in BENCH_STORES), *FLOOR_DBS]
        drop_databases(params, ours)
        with psycopg.connect(autocommit=True, **params) as conn:
            server_version = conn.execute("SELECT current_setting('server_version')").fetchone()[0]
        try:
            platform = load_platform()
            pool_size = DEFAULT_POOL_SIZE
            services.create_service(
                platform,
                name=SERVICE,
                host=params["host"],
                port=params["port"],
                username=params["user"],
                password=params["password"],
                maintenance_db=params["dbname"],
                pool_size=pool_size,
            )
            apps.assign_service(platform, APP, STORE, SERVICE)
            for s in BENCH_STORES:
                apps.assign_service(platform, BENCH_APP, s, SERVICE)
            check_results(stores.sync_stores(platform, [APP], database=STORE), f"sync of {APP}/{STORE}")
            from my_first_app.app import App

            t0 = time.perf_counter()
            App.get_persistent_store_database(STORE)
            cold_ms = (time.perf_counter() - t0) * 1000

            log("1/6 warm lookups")
            lookup = bench_lookup(App, plan)
            lookup["cold_first_call_ms"] = round(cold_ms, 2)
            log("2/6 session round trips")
            session, raw_engine = bench_session(App, pool_size, plan)
            log("3/6 server connections")
            connections = bench_connections(App, params, pool_size, raw_engine, plan)
            log("4/6 refresh of 10 stores vs the psycopg floor")
            refresh = bench_refresh(platform, params, plan)
            log("5/6 syncstores process vs imports")
            process = bench_sync_process(platform, home, plan)
            log("6/6 app listing with the servers' word on readiness")
            listing = bench_listing(platform, plan)
        finally:
            from storekeeper import engines

            engines.clear()
            drop_databases(params, ours)

    lookup_p50s = {k: lookup[k]["p50"] / 1000 for k in ("engine", "as_url", "as_sessionmaker")}
    seq = connections["after_lookups_and_roundtrips"]["storekeeper"]
    peak = connections["concurrent"]["peak_storekeeper"]
    met = {
        "lookup": all(v <= TARGETS["lookup_p50_us_max"] for v in lookup_p50s.values()),
        "session_roundtrip": session["ratio_p50"] <= TARGETS["session_roundtrip_ratio_max"],
        "connections": max(seq, peak, connections["concurrent"]["after_storekeeper"]) <= pool_size,
        "refresh": refresh["ratio"] <= TARGETS["refresh_ratio_max"],
        "sync_process": process["sync_process_s"] <= TARGETS["sync_process_s_max"],
        "help_process": process["help_process_s"] <= TARGETS["help_process_s_max"],
        "listing": listing["server_check_ms"] <= TARGETS["listing_server_check_ms_max"],
    }
    return {
        "benchmark": "storekeeper core (issue 3, item 10)",
        "mode": "quick" if quick else "full",
        "machine": machine_info(server_version, server_kind, loadavg_at_start),
        "lookup": lookup,
        "session": session,
        "connections": connections,
        "refresh": refresh,
        "sync_process": process,
        "listing": listing,
        "targets": {**TARGETS, "connections_max": pool_size},
        "met": met,
        "all_met": all(met.values()),
        "bench_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path, help="also write the JSON document to this file")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run in well under a minute")
    args = parser.parse_args(argv)
    result = run(args.quick)
    emit(result, args.json_out)
    missed = [k for k, ok in result["met"].items() if not ok]
    log(f"done in {result['bench_seconds']} s; targets missed: {', '.join(missed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
