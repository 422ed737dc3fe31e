"""What each way of writing an app endpoint costs: CPU and wall time per request, in-process.

Usage::

    python bench/endpoint_costs.py [--json-out bench/results/endpoints.json] [--quick] [--rows 5000]
        [--rounds 7] [--requests 300]

About 2-4 minutes with the defaults (on 2 shared cores), 15-30 s with ``--quick``.

Needs the ``links`` example app (``pip install -e examples/links``: its model
is the table measured, and it brings orjson) and greenlet (SQLAlchemy's asyncio
extension; installed with SQLAlchemy on common platforms).

One run, all in this process:

* a private PostgreSQL server (``LocalServer.temporary(fast=True)``), or the
  superuser URL in ``STOREKEEPER_BENCH_DATABASE_URL`` (the run creates and
  drops only database ``skbench_endpoint_costs`` there);
* the ``links`` table of ``examples/links`` (``links.model``) filled with
  ``--rows`` rows (default 5,000);
* one engine made as storekeeper makes a store's engine
  (``create_engine(url, pool_size=5, max_overflow=0)``, psycopg 3), a
  sessionmaker on it, and an asyncio engine
  (``create_async_engine(url, pool_size=5, max_overflow=0)``) for the one
  variant that needs it;
* one FastAPI app with one route per variant (``VARIANTS``), each answering the
  same JSON page of the 50 newest links (``{"links": [...], "next": "..."}``)
  unless its description says otherwise.

The ASGI app is called directly, as a server would call it (``scope``,
``receive``, ``send``; no HTTP server, no sockets, no client), one request at
a time, on one asyncio event loop; sync endpoints and sync dependencies run in
Starlette's thread pool as they do under uvicorn. Each variant is measured in
batches of ``--requests`` requests (the 5,000-row variant: a tenth of that),
``--rounds`` rounds, variants interleaved and their order rotated every round,
after a warm-up. Per request: CPU time of this process (``time.process_time()``:
every thread, so the thread-pool hop is counted; the PostgreSQL server's own
CPU is not) and wall time. Reported per variant: median and min over rounds,
and the median over rounds of the ratio to the baseline measured in the same
round (the machine's speed drifts between rounds; ratios within a round are
what to compare). Every response's status is counted and the first one's links
are checked.

JSON goes to stdout (and ``--json-out``), a table and progress to stderr; the
exit status is 0. The database (or the private server) is removed at the end,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

# At module level: FastAPI resolves the routes' annotations (Depends, Response) in this module's globals.
import orjson
from benchlib import admin_params, emit, machine_info
from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from links.model import Link
from sqlalchemy import bindparam, select
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

#: Env var naming a superuser URL of an existing server (skips starting a private one).
DATABASE_URL_ENV = "STOREKEEPER_BENCH_DATABASE_URL"
DATABASE = "skbench_endpoint_costs"
PAGE = 50
BASELINE = "orm_entities_session_tx"

#: name -> what it does (one route per name, at /<name>).
VARIANTS: dict[str, str] = {
    "orm_entities_session_tx": (
        "sync def; with Session.begin(); select(Link) ORM entities built per request; dicts; stdlib JSONResponse "
        "(the tutorial style; the baseline)"
    ),
    "orm_columns_session_tx": "as the baseline, but select(Link.id, Link.url, Link.created_at): rows, not entities",
    "core_connection_tx": "sync def; with engine.begin(): column select built per request; stdlib JSONResponse",
    "core_autocommit_stdlib_json": (
        "sync def; engine.connect() in AUTOCOMMIT; column select built per request; stdlib JSONResponse"
    ),
    "core_autocommit_prebuilt_stdlib_json": (
        "sync def; AUTOCOMMIT; statement prebuilt at import with bindparam('n'); stdlib JSONResponse"
    ),
    "core_autocommit_prebuilt": (
        "sync def; AUTOCOMMIT; prebuilt statement; orjson Response (what examples/links does)"
    ),
    "core_autocommit_prebuilt_return_dict": (
        "as core_autocommit_prebuilt, but returns the dict (annotated dict[str, Any]) and lets FastAPI "
        "validate and encode it through the response model it infers (pydantic; datetimes end in Z)"
    ),
    "async_def_blocking_call": (
        "async def calling the same sync DB code directly on the event loop (no thread hop; blocks the loop)"
    ),
    "async_def_run_in_threadpool": "async def + await run_in_threadpool(same sync DB code): the same hop as sync def",
    "sqlalchemy_asyncio": "async def; create_async_engine, async with engine.connect() in AUTOCOMMIT; prebuilt; orjson",
    "paging_5000_rows_no_limit": "core_autocommit_prebuilt returning every row (--rows), no LIMIT: no paging",
    "sync_dependency": "core_autocommit_prebuilt plus one trivial sync def dependency (Depends)",
    "async_dependency": "core_autocommit_prebuilt plus one trivial async def dependency (Depends)",
}
#: Variants whose batches are a tenth of --requests (each request is ~100x the work).
HEAVY = {"paging_5000_rows_no_limit"}

PLANS = {
    "full": {"rounds": 7, "requests": 300, "warmup": 30},
    "quick": {"rounds": 2, "requests": 20, "warmup": 3},
}


def log(message: str) -> None:
    print(f"[endpoint-costs {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- server and database --------------------------------------------------------------


@contextlib.contextmanager
def database_server() -> Iterator[tuple[str, str, str]]:
    """Yield (superuser SQLAlchemy URL, description, server version): from the env or a private server."""
    from_env = os.environ.get(DATABASE_URL_ENV)
    if from_env:
        from sqlalchemy.engine import make_url

        url = make_url(from_env.replace("postgres://", "postgresql://", 1))
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        yield url.render_as_string(hide_password=False), f"${DATABASE_URL_ENV}", ""
        return
    from storekeeper.pgserver import LocalServer

    log("starting a private PostgreSQL server (LocalServer.temporary(fast=True))")
    with LocalServer.temporary(fast=True) as server:
        yield (
            server.url(),
            "private LocalServer.temporary(fast=True): fsync, synchronous_commit, full_page_writes off",
            server.version(),
        )


def drop_database(params: dict[str, Any]) -> None:
    import psycopg

    with psycopg.connect(autocommit=True, **params) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def create_database(params: dict[str, Any]) -> str:
    """(Re)create the bench database; return the server's version."""
    import psycopg

    drop_database(params)
    with psycopg.connect(autocommit=True, **params) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    return str(row[0]) if row else "unknown"


def fill(engine: Any, rows: int) -> None:
    """Create the links table (links.model) and insert ``rows`` links, oldest first."""
    from links.model import Base
    from sqlalchemy import text

    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO links (url, created_at) "
                "SELECT 'https://example.com/pages/' || g, now() - (:n - g) * interval '1 second' "
                "FROM generate_series(1, :n) AS g"
            ),
            {"n": rows},
        )
        conn.execute(text("ANALYZE links"))


# -- the app ------------------------------------------------------------------------------

#: Built once, at import, as examples/links builds its statements (the variants named "prebuilt" use them).
PAGE_STMT = select(Link.id, Link.url, Link.created_at).order_by(Link.id.desc()).limit(bindparam("n"))
ALL_STMT = select(Link.id, Link.url, Link.created_at).order_by(Link.id.desc())


def sync_dep() -> int:
    """A trivial sync dependency: FastAPI runs it in the thread pool (one more hop)."""
    return 1


async def async_dep() -> int:
    """A trivial async dependency: FastAPI awaits it on the event loop."""
    return 1


def build_app(engine: Any, async_engine: Any, rows: int) -> Any:
    """Return a FastAPI app with one GET route per variant, at /<variant name>."""
    Session = sessionmaker(engine)
    page_stmt, all_stmt = PAGE_STMT, ALL_STMT

    def stdlib_page(rows_: Any) -> JSONResponse:
        links = [{"id": i, "url": u, "created_at": c.isoformat()} for i, u, c in rows_[:PAGE]]
        nxt = str(rows_[PAGE - 1][0]) if len(rows_) > PAGE else None
        return JSONResponse({"links": links, "next": nxt})

    def page_dict(rows_: Any, limit: int | None = PAGE) -> dict[str, Any]:
        if limit is None:
            return {"links": [{"id": i, "url": u, "created_at": c} for i, u, c in rows_], "next": None}
        nxt = str(rows_[limit - 1][0]) if len(rows_) > limit else None
        return {"links": [{"id": i, "url": u, "created_at": c} for i, u, c in rows_[:limit]], "next": nxt}

    def orjson_response(content: Any) -> Response:
        return Response(orjson.dumps(content), media_type="application/json")

    def autocommit() -> Any:
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def fetch_page() -> Response:
        """The core_autocommit_prebuilt endpoint's body: one autocommit statement, orjson."""
        with autocommit() as conn:
            rows_ = conn.execute(page_stmt, {"n": PAGE + 1}).all()
        return orjson_response(page_dict(rows_))

    app = FastAPI()

    @app.get("/orm_entities_session_tx")
    def orm_entities_session_tx() -> Response:
        with Session.begin() as session:
            found = session.scalars(select(Link).order_by(Link.id.desc()).limit(PAGE + 1)).all()
            links = [{"id": x.id, "url": x.url, "created_at": x.created_at.isoformat()} for x in found[:PAGE]]
            nxt = str(found[PAGE - 1].id) if len(found) > PAGE else None
        return JSONResponse({"links": links, "next": nxt})

    @app.get("/orm_columns_session_tx")
    def orm_columns_session_tx() -> Response:
        with Session.begin() as session:
            found = session.execute(
                select(Link.id, Link.url, Link.created_at).order_by(Link.id.desc()).limit(PAGE + 1)
            ).all()
        return stdlib_page(found)

    @app.get("/core_connection_tx")
    def core_connection_tx() -> Response:
        with engine.begin() as conn:
            found = conn.execute(
                select(Link.id, Link.url, Link.created_at).order_by(Link.id.desc()).limit(PAGE + 1)
            ).all()
        return stdlib_page(found)

    @app.get("/core_autocommit_stdlib_json")
    def core_autocommit_stdlib_json() -> Response:
        with autocommit() as conn:
            found = conn.execute(
                select(Link.id, Link.url, Link.created_at).order_by(Link.id.desc()).limit(PAGE + 1)
            ).all()
        return stdlib_page(found)

    @app.get("/core_autocommit_prebuilt_stdlib_json")
    def core_autocommit_prebuilt_stdlib_json() -> Response:
        with autocommit() as conn:
            found = conn.execute(page_stmt, {"n": PAGE + 1}).all()
        return stdlib_page(found)

    @app.get("/core_autocommit_prebuilt")
    def core_autocommit_prebuilt() -> Response:
        return fetch_page()

    @app.get("/core_autocommit_prebuilt_return_dict")
    def core_autocommit_prebuilt_return_dict() -> dict[str, Any]:
        with autocommit() as conn:
            found = conn.execute(page_stmt, {"n": PAGE + 1}).all()
        return page_dict(found)

    @app.get("/async_def_blocking_call")
    async def async_def_blocking_call() -> Response:
        return fetch_page()  # runs on the event loop: every other request of this worker waits

    @app.get("/async_def_run_in_threadpool")
    async def async_def_run_in_threadpool() -> Response:
        return await run_in_threadpool(fetch_page)

    @app.get("/sqlalchemy_asyncio")
    async def sqlalchemy_asyncio() -> Response:
        async with async_engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            found = (await conn.execute(page_stmt, {"n": PAGE + 1})).all()
        return orjson_response(page_dict(found))

    @app.get("/paging_5000_rows_no_limit")
    def paging_5000_rows_no_limit() -> Response:
        with autocommit() as conn:
            found = conn.execute(all_stmt).all()
        return orjson_response(page_dict(found, limit=None))

    @app.get("/sync_dependency")
    def sync_dependency(one: Annotated[int, Depends(sync_dep)]) -> Response:
        return fetch_page()

    @app.get("/async_dependency")
    def async_dependency(one: Annotated[int, Depends(async_dep)]) -> Response:
        return fetch_page()

    missing = set(VARIANTS) - {getattr(r, "path", "").lstrip("/") for r in app.routes}
    assert not missing, f"variants without a route: {missing}"
    return app


# -- calling the ASGI app ----------------------------------------------------------------


async def call(app: Any, path: str) -> tuple[int, bytes]:
    """Send one GET to ``app`` as an ASGI server would; return (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # a disconnect never comes while the response is being sent
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def batch(app: Any, path: str, n: int, statuses: dict[int, int]) -> tuple[float, float, int]:
    """Send ``n`` requests one after another; return (CPU s, wall s, bytes of the last body)."""
    size = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        status, body = await call(app, path)
        statuses[status] = statuses.get(status, 0) + 1
        size = len(body)
    return time.process_time() - cpu0, time.perf_counter() - wall0, size


def expected_links(name: str, rows: int) -> int:
    return rows if name == "paging_5000_rows_no_limit" else min(PAGE, rows)


async def measure(app: Any, rows: int, plan: dict[str, int]) -> dict[str, Any]:
    names = list(VARIANTS)
    out: dict[str, Any] = {
        n: {"statuses": {}, "cpu_ms": [], "wall_ms": [], "cpu_ratio": [], "wall_ratio": []} for n in names
    }

    def per_batch(name: str) -> int:
        return max(plan["requests"] // 10, 2) if name in HEAVY else plan["requests"]

    log(f"warm-up and checks: {plan['warmup']} requests per variant")
    for name in names:
        status, body = await call(app, f"/{name}")
        doc = json.loads(body) if status == 200 else {}
        links = doc.get("links", [])
        out[name]["first_status"] = status
        out[name]["links"] = len(links)
        out[name]["links_ok"] = status == 200 and len(links) == expected_links(name, rows)
        out[name]["keys_ok"] = bool(links) and set(links[0]) == {"id", "url", "created_at"} and "next" in doc
        await batch(app, f"/{name}", plan["warmup"], out[name]["statuses"])

    for r in range(plan["rounds"]):
        order = names[r % len(names) :] + names[: r % len(names)]
        this_round: dict[str, tuple[float, float]] = {}
        for name in order:
            n = per_batch(name)
            cpu, wall, size = await batch(app, f"/{name}", n, out[name]["statuses"])
            this_round[name] = (cpu / n * 1000, wall / n * 1000)
            out[name]["bytes"] = size
        base_cpu, base_wall = this_round[BASELINE]
        for name, (cpu_ms, wall_ms) in this_round.items():
            out[name]["cpu_ms"].append(cpu_ms)
            out[name]["wall_ms"].append(wall_ms)
            out[name]["cpu_ratio"].append(cpu_ms / base_cpu if base_cpu else float("nan"))
            out[name]["wall_ratio"].append(wall_ms / base_wall if base_wall else float("nan"))
        log(
            f"round {r + 1}/{plan['rounds']}: baseline {base_cpu:.3f} ms CPU/req, "
            f"{base_wall:.3f} ms wall/req; load {os.getloadavg()[0]:.2f}"
        )

    result: dict[str, Any] = {}
    for name in names:
        v = out[name]
        result[name] = {
            "description": VARIANTS[name],
            "requests_per_round": per_batch(name),
            "cpu_ms_per_request": {
                "median": round(statistics.median(v["cpu_ms"]), 4),
                "min": round(min(v["cpu_ms"]), 4),
                "rounds": [round(x, 4) for x in v["cpu_ms"]],
            },
            "wall_ms_per_request": {
                "median": round(statistics.median(v["wall_ms"]), 4),
                "min": round(min(v["wall_ms"]), 4),
                "rounds": [round(x, 4) for x in v["wall_ms"]],
            },
            "cpu_ratio_to_baseline": round(statistics.median(v["cpu_ratio"]), 3),
            "wall_ratio_to_baseline": round(statistics.median(v["wall_ratio"]), 3),
            "statuses": {str(k): c for k, c in sorted(v["statuses"].items())},
            "all_200": set(v["statuses"]) == {200},
            "links": v["links"],
            "links_ok": v["links_ok"] and v["keys_ok"],
            "bytes_per_response": v.get("bytes", 0),
        }
    return result


# -- report ----------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    lines = [
        "",
        (
            f"{'variant':<38} {'CPU ms/req':>10} {'min':>7} {'x base':>7} {'wall ms/req':>11} {'min':>7} "
            f"{'x base':>7} {'bytes':>7} {'200s':>6}"
        ),
    ]
    for name, v in result["variants"].items():
        c, w = v["cpu_ms_per_request"], v["wall_ms_per_request"]
        lines.append(
            f"{name:<38} {c['median']:>10.3f} {c['min']:>7.3f} {v['cpu_ratio_to_baseline']:>7.3f} "
            f"{w['median']:>11.3f} {w['min']:>7.3f} {v['wall_ratio_to_baseline']:>7.3f} "
            f"{v['bytes_per_response']:>7} {v['statuses'].get('200', 0):>6}"
        )
    lines.append(
        f"(medians and mins over {result['plan']['rounds']} rounds; 'x base': median over rounds of the ratio to "
        f"{BASELINE} in the same round; CPU: this process, all threads)"
    )
    lines.append(f"every variant answered 200 with the expected links: {result['all_ok']}")
    print("\n".join(lines), file=sys.stderr)


# -- main ---------------------------------------------------------------------------------


def run(quick: bool, rows: int, rounds: int | None, requests: int | None) -> dict[str, Any]:
    loadavg_at_start = round(os.getloadavg()[0], 2)
    plan = dict(PLANS["quick" if quick else "full"])
    if rounds:
        plan["rounds"] = rounds
    if requests:
        plan["requests"] = requests
    started = time.perf_counter()
    with database_server() as (admin_url, server_kind, version):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.ext.asyncio import create_async_engine

        params = admin_params(admin_url)
        server_version = create_database(params)
        url = make_url(admin_url).set(database=DATABASE)
        engine = create_engine(url, pool_size=5, max_overflow=0)
        async_engine = create_async_engine(url, pool_size=5, max_overflow=0)
        try:
            log(f"filling links with {rows} rows")
            fill(engine, rows)
            app = build_app(engine, async_engine, rows)
            log(f"measuring {len(VARIANTS)} variants: {plan['rounds']} rounds x {plan['requests']} requests")

            async def main_loop() -> dict[str, Any]:
                try:
                    return await measure(app, rows, plan)
                finally:
                    await async_engine.dispose()

            variants = asyncio.run(main_loop())
        finally:
            engine.dispose()
            drop_database(params)
    return {
        "benchmark": "endpoint costs: one FastAPI route per way of writing an endpoint, called in-process over ASGI",
        "mode": "quick" if quick else "full",
        "rows": rows,
        "page": PAGE,
        "baseline": BASELINE,
        "plan": plan,
        "machine": machine_info(
            server_version or version, server_kind, loadavg_at_start, modules=("fastapi", "starlette", "orjson")
        )
        | {"event_loop": "asyncio (default policy)"},
        "variants": variants,
        "all_ok": all(v["all_200"] and v["links_ok"] for v in variants.values()),
        "bench_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json-out", type=Path, help="also write the JSON document to this file")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 20 requests: a smoke run")
    parser.add_argument("--rows", type=int, default=5000, help="rows in the links table (default 5000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 7; --quick 2)")
    parser.add_argument("--requests", type=int, help="requests per variant per round (default 300; --quick 20)")
    args = parser.parse_args(argv)
    if args.rows < PAGE + 1:
        parser.error(f"--rows must be at least {PAGE + 1} (one page and one more)")
    result = run(args.quick, args.rows, args.rounds, args.requests)
    emit(result, args.json_out)
    print_table(result)
    log(f"done in {result['bench_seconds']} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
