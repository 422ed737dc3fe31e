"""HTTP load benchmark: the ``links`` example app on the portal vs the tutorial's Flask app.

Usage::

    python bench/links_load.py [--json-out bench/results/links.json]
        [--duration 6] [--rounds 3] [--warmup 3] [--threads 1] [--configs 2x16,4x16,2x64]
        [--server uvicorn|granian] [--platform-db sqlite|postgresql]

About 6 minutes with the defaults.

Needs ``wrk`` (Debian: ``apt-get install -y wrk``), the ``links`` example app
(``pip install -e examples/links``) and Flask, Flask-SQLAlchemy and gunicorn
(``pip install flask flask-sqlalchemy gunicorn``) in this interpreter's venv.

One run, all on this machine:

* one private PostgreSQL server (``LocalServer.temporary(fast=True)``) holding
  both apps' databases (``links_primary_db`` and ``flask_links``);
* **ours**: a throwaway storekeeper home (SQLite platform database unless
  ``--platform-db postgresql``), the server registered as service ``local``,
  ``links``/``primary_db`` assigned, ``storekeeper syncstores links``, an admin
  and an API token, served by ``storekeeper start --workers N`` (``--server``: uvicorn by default);
* **peer**: ``bench/flask_links/app.py`` (the seed tutorial's Flask +
  Flask-SQLAlchemy app) served by ``gunicorn -w N -k sync``;
* the same ``wrk`` command line (threads, connections, duration, timeout) for
  both: per scenario a warm-up run each, then ``--rounds`` measured runs each,
  alternating which server goes first; medians are reported (every round is
  kept in the JSON). After each wrk run the script waits until both servers and
  PostgreSQL are idle, so one server's leftover work (the peer's sync workers
  finish every queued request after wrk has gone) does not land in the next
  run. Each run also records the CPU time per request of the server's process
  tree and of the PostgreSQL server, and the load average:

  a. ``get_50``: GET with 50 rows in the table (ours: ``?limit=50``, the whole
     first page; peer: all 50 rows) -- the like-for-like comparison;
  b. ``get_5000``: GET with 5,000 rows (ours: the first page of 50; peer: every
     row) -- what paging buys;
  c. ``post``: POST ``{"url": ...}`` with a unique URL per request (ours with
     ``Authorization: Bearer``); 201s are counted in wrk's Lua ``response`` hook
     and compared with the rows the table gained. wrk abandons the requests in
     flight when its time is up, and a server may still commit those, so the
     exact check is a separate fixed-count phase (``post_exact``): a Python
     client sends exactly ``--exact-posts`` POSTs over as many connections as
     wrk uses, and every 201 must be one new row, and vice versa.

Configurations (``--configs``, ``WORKERSxCONNECTIONS``): both servers are
started with that many worker processes and wrk opens that many connections.
The first configuration (default ``2x16``) runs every scenario above; the
others (default ``4x16`` and ``2x64``) run ``get_50`` and ``post``, so a win is
not one configuration's. Targets per configuration: ours' req/s at least 1.5x
the peer's (``get_5000``: at least the peer's), ours' p99 no higher than the
peer's, no errors, and (``post_exact``) stored rows equal to 201s.

JSON goes to stdout (and ``--json-out``), a table and progress to stderr; the
exit status is 0 whether or not the targets are met (``met``, ``all_met``).
Servers, the PostgreSQL server and temporary directories are removed at the
end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform as pyplatform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from benchlib import emit

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "flask_links"
BIN = Path(sys.executable).parent

APP = "links"
SETTING = "primary_db"
OUR_DB = f"{APP}_{SETTING}"
PEER_DB = "flask_links"
SERVICE = "local"
ADMIN = "bench"
OUR_PATH = f"/apps/{APP}/links"
PEER_PATH = "/links"
SMALL_ROWS = 50
LARGE_ROWS = 5000
PAGE = 50

TARGETS = {
    "throughput_ratio_min": 1.5,  # ours / peer requests per second (get_5000: >= 1, "stays ahead")
    "p99_ratio_max": 1.0,  # ours / peer p99 latency: no higher than the peer's
    "errors_max": 0,
    "stored_equals_created": True,
}

# One Lua script for every run: args are MODE (get|post) TAG TOKEN. In post mode the
# body carries a unique URL and 201s are counted per thread, summed in done().
WRK_LUA = r"""
local threads = {}
local counter = 0
created = 0
other = 0
tid = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode = args[1] or "get"
  tag = args[2] or "run"
  if mode == "post" then
    headers = {["Content-Type"] = "application/json"}
    if args[3] and args[3] ~= "" then headers["Authorization"] = "Bearer " .. args[3] end
    function request()
      counter = counter + 1
      local body = string.format('{"url": "https://bench.example/%s/%d/%d"}', tag, tid, counter)
      return wrk.format("POST", nil, headers, body)
    end
    function response(status, hdrs, body)
      if status == 201 then created = created + 1 else other = other + 1 end
    end
  end
end

function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + (t:get("created") or 0)
    o = o + (t:get("other") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"status":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f,' ..
    '"created":%d,"other":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    latency.stdev, c, o))
end
"""


def log(message: str) -> None:
    print(f"[links-load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(SystemExit):
    """A precondition failed: exit non-zero with a message saying what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(f"links_load: {message}")


# -- preconditions --------------------------------------------------------------------


def check_tools() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (Debian: apt-get install -y wrk).")
    missing = [m for m in ("flask", "flask_sqlalchemy", "gunicorn") if _missing_module(m)]
    if missing or not (BIN / "gunicorn").exists():
        raise BenchError(
            f"missing in {sys.prefix}: {', '.join(missing) or 'the gunicorn script'}; "
            f"run: {BIN / 'pip'} install flask flask-sqlalchemy gunicorn   (or: pip install -e '.[bench]')"
        )
    apps = {ep.name for ep in metadata.entry_points(group="storekeeper.apps")}
    if APP not in apps:
        raise BenchError(f'the "{APP}" example app is not installed; run: {BIN / "pip"} install -e examples/links')
    if not (BIN / "storekeeper").exists():
        raise BenchError(f"no storekeeper script next to {sys.executable}; run: pip install -e .")
    return wrk


def _missing_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_table() -> dict[int, tuple[int, float]]:
    """Return {pid: (ppid, user + system CPU seconds)} for every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # After "pid (comm)": state ppid ... utime is field 14, stime 15 (1-based in proc(5)).
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """Return the CPU seconds used so far by each root process and its living descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for name, root in roots.items():
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack.extend(children.get(pid, []))
        out[name] = total
    return out


def wait_idle(roots: list[int], timeout: float = 15.0, interval: float = 0.25, busy_share: float = 0.1) -> float:
    """Wait until the processes under ``roots`` use less than ``busy_share`` of one CPU; return the seconds waited.

    When wrk stops, a server may still be working through requests it had queued
    (the peer's sync workers finish every queued request for a closed
    connection): that work must not land in the next measured run.
    """
    named = {str(pid): pid for pid in roots if pid}
    start = time.monotonic()
    before = sum(tree_cpu(named).values())
    while time.monotonic() - start < timeout:
        time.sleep(interval)
        now = sum(tree_cpu(named).values())
        if now - before < busy_share * interval:
            break
        before = now
    return round(time.monotonic() - start, 2)


class Server:
    """A server process in its own process group, stopped with the whole group."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], port: int, logfile: Path, cwd: Path | None = None
    ):
        self.name, self.port, self.logfile = name, port, logfile
        self._log = logfile.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                status, body = http_request(self.port, "GET", path, timeout=5)
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as err:
                last = str(err)
            time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer GET {path} with 200 ({last}); log:\n{self.tail()}")

    def worker_pids(self) -> list[int]:
        """Return the pids of the server's worker processes (children of the master)."""
        try:
            out = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
            ).stdout
        except FileNotFoundError:
            return []
        return [int(p) for p in out.split()]

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._log.flush()
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        # Whatever is left of the group (workers of a killed master) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


def http_request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    timeout: float = 30,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.will_close:
            conn.close()
        return resp.status, data
    except (http.client.HTTPException, OSError):
        conn.close()
        raise
    finally:
        if own:
            conn.close()


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(BIN / "storekeeper"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"storekeeper {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# -- databases ----------------------------------------------------------------------------


def pg_params(url: str, database: str | None = None) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "password": u.password,
        "dbname": database or u.database or "postgres",
    }


def create_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **pg_params(url)) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def find_links_table(url: str, database: str) -> tuple[str, str, dict[str, tuple[bool, bool]]]:
    """Return (schema, table, {column: (nullable, has_default)}) of the table with a ``url`` column."""
    import psycopg

    with psycopg.connect(autocommit=True, **pg_params(url, database)) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name, column_name, is_nullable = 'YES', column_default IS NOT NULL "
            "  OR is_identity = 'YES' FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY ordinal_position"
        ).fetchall()
    tables: dict[tuple[str, str], dict[str, tuple[bool, bool]]] = {}
    for schema, table, column, nullable, has_default in rows:
        tables.setdefault((schema, table), {})[column] = (nullable, has_default)
    found = [key for key, cols in tables.items() if "url" in cols]
    if len(found) != 1:
        raise BenchError(f"expected one table with a url column in {database}, found {found}")
    return found[0][0], found[0][1], tables[found[0]]


def set_rows(url: str, database: str, table: tuple[str, str, dict[str, tuple[bool, bool]]], n: int, tag: str) -> None:
    """Empty the table and insert ``n`` rows with distinct URLs and created_at times, in one statement."""
    import psycopg
    from psycopg import sql

    schema, name, columns = table
    blocking = [
        c
        for c, (nullable, has_default) in columns.items()
        if not nullable and not has_default and c not in ("url", "created_at")
    ]
    if blocking:
        raise BenchError(f"cannot seed {database}.{name}: NOT NULL columns without default {blocking}")
    ident = sql.Identifier(schema, name)
    cols = [sql.Identifier("url")]
    vals = [sql.SQL("'https://seed.example/' || {} || '/' || g").format(sql.Literal(tag))]
    if "created_at" in columns:
        cols.append(sql.Identifier("created_at"))
        vals.append(sql.SQL("now() - make_interval(secs => {} - g)").format(sql.Literal(n)))
    with psycopg.connect(**pg_params(url, database)) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(ident))
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM generate_series(1, {}) AS g").format(
                ident, sql.SQL(", ").join(cols), sql.SQL(", ").join(vals), sql.Literal(n)
            )
        )
    with psycopg.connect(autocommit=True, **pg_params(url, database)) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(ident))


def count_rows(url: str, database: str, table: tuple[str, str, Any]) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **pg_params(url, database)) as conn:
        return int(
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table[0], table[1]))).fetchone()[0]
        )


# -- load ------------------------------------------------------------------------------------


def wrk_run(
    wrk: str,
    lua: Path,
    port: int,
    path: str,
    mode: str,
    tag: str,
    token: str,
    args: argparse.Namespace,
    duration: float,
    server_pid: int = 0,
    pg_pid: int = 0,
) -> dict[str, Any]:
    argv = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration:g}s",
        f"--timeout={args.timeout:g}s",
        "--latency",
        "-s",
        str(lua),
        f"http://127.0.0.1:{port}{path}",
        "--",
        mode,
        tag,
        token,
    ]
    roots = {"server": server_pid, "postgresql": pg_pid}
    cpu0 = tree_cpu(roots)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + args.timeout + 60, check=False)
    cpu1 = tree_cpu(roots)
    settle = wait_idle(args.idle_roots)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    raw = json.loads(line[len("WRKJSON ") :])
    secs = raw["duration_us"] / 1e6
    out = {
        "requests": raw["requests"],
        "seconds": round(secs, 2),
        "rps": round(raw["requests"] / secs, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "bytes_per_response": round(raw["bytes"] / raw["requests"]) if raw["requests"] else None,
        "non_2xx_3xx": raw["status"],
        "socket_errors": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
    }
    out["errors"] = raw["status"] + sum(out["socket_errors"].values())
    if raw["requests"]:
        # CPU of the server's processes and of the whole PostgreSQL server per completed request:
        # less sensitive than req/s to what else runs on the machine.
        out["server_cpu_ms_per_request"] = round((cpu1["server"] - cpu0["server"]) * 1000 / raw["requests"], 3)
        out["postgresql_cpu_ms_per_request"] = round(
            (cpu1["postgresql"] - cpu0["postgresql"]) * 1000 / raw["requests"], 3
        )
    out["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    out["settle_s"] = settle  # how long the servers kept working after wrk stopped
    if mode == "post":
        out["created_201"] = raw["created"]
        out["other_status"] = raw["other"]
    return out


def exact_posts(port: int, path: str, token: str, total: int, connections: int, tag: str) -> dict[str, Any]:
    """Send exactly ``total`` POSTs over ``connections`` keep-alive connections; count the statuses."""
    per = [total // connections + (1 if i < total % connections else 0) for i in range(connections)]
    statuses: dict[str, int] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for j in range(per[i]):
                try:
                    status, _ = http_request(
                        port, "POST", path, {"url": f"https://exact.example/{tag}/{i}/{j}"}, token=token, conn=conn
                    )
                    key = str(status)
                except (http.client.HTTPException, OSError) as err:
                    key = "socket_error"
                    with lock:
                        failures.append(repr(err))
                with lock:
                    statuses[key] = statuses.get(key, 0) + 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "sent": total,
        "seconds": round(time.perf_counter() - t0, 2),
        "statuses": statuses,
        "failures_sample": failures[:3],
    }


# -- the run ------------------------------------------------------------------------------------


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds for rates, latencies and CPU; sums for counts; every round kept under ``runs``."""

    def med(key: str) -> Any:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    out: dict[str, Any] = {
        k: med(k)
        for k in (
            "rps",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "mean_ms",
            "bytes_per_response",
            "server_cpu_ms_per_request",
            "postgresql_cpu_ms_per_request",
        )
    }
    out["max_ms"] = max(r["max_ms"] for r in runs)
    for key in (
        "requests",
        "errors",
        "non_2xx_3xx",
        "created_201",
        "other_status",
        "rows_added",
        "rows_added_minus_201s",
    ):
        if key in runs[0]:
            out[key] = sum(r[key] for r in runs)
    out["socket_errors"] = {k: sum(r["socket_errors"][k] for r in runs) for k in runs[0]["socket_errors"]}
    out["loadavg_1m_max"] = max(r["loadavg_1m_after"] for r in runs)
    out["runs"] = runs
    return out


def machine_info(server_version: str, load_start: float) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "storekeeper",
        "fastapi",
        "starlette",
        "uvicorn",
        "flask",
        "flask-sqlalchemy",
        "gunicorn",
        "sqlalchemy",
        "psycopg",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    wrk_version = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0].strip()
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "os": pyplatform.platform(),
        "python": pyplatform.python_version(),
        "postgresql": server_version,
        "wrk": wrk_version,
        "packages": versions,
        "loadavg_1m_at_start": load_start,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measured wrk run (default 6)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measured runs per server and scenario, alternating which goes first; medians reported (default 3)",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of each warm-up wrk run (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--timeout", type=float, default=5.0, help="wrk --timeout seconds (default 5)")
    parser.add_argument(
        "--configs",
        default="2x16,4x16,2x64",
        help="configurations WORKERSxCONNECTIONS, comma-separated (default 2x16,4x16,2x64); the first runs every "
        "scenario, the others get_50 and post",
    )
    parser.add_argument(
        "--server", choices=("uvicorn", "granian"), default="uvicorn", help="ours: storekeeper start --server"
    )
    parser.add_argument("--exact-posts", type=int, default=800, help="POSTs in the exact-count phase (default 800)")
    parser.add_argument(
        "--platform-db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="ours: platform database (default sqlite in the temporary home)",
    )
    args = parser.parse_args(argv)
    try:
        args.configs_parsed = [tuple(int(n) for n in c.lower().split("x")) for c in args.configs.split(",")]
        assert all(len(c) == 2 and min(c) >= 1 for c in args.configs_parsed)
    except (ValueError, AssertionError):
        parser.error(f"--configs: write WORKERSxCONNECTIONS[,...], e.g. 2x16,4x16 (got {args.configs!r})")

    wrk = check_tools()
    load_start = round(os.getloadavg()[0], 2)
    servers: list[Server] = []

    # Ctrl-C or a TERM from outside: unwind through the finally blocks below.
    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)

    from storekeeper.pgserver import LocalServer

    with temp_dir("storekeeper-links-load-") as tmp:
        log("starting a private PostgreSQL server (LocalServer.temporary(fast=True))")
        with LocalServer.temporary(fast=True) as pg:
            try:
                result = run(args, wrk, tmp, pg, servers)
            finally:  # servers go before the database server they use
                for server in servers:
                    server.stop()
            result["machine"] = machine_info(pg.version(), load_start)

    emit(result, args.json_out)
    print_table(result)
    return 0


def run(args: argparse.Namespace, wrk: str, tmp: Path, pg: Any, servers: list[Server]) -> dict[str, Any]:
    super_url = pg.url()
    lua = tmp / "links.lua"
    lua.write_text(WRK_LUA)

    # -- ours: a fresh home with the server registered and links' store synced.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREKEEPER_")}
    env["STOREKEEPER_HOME"] = str(tmp / "home")
    if args.platform_db == "postgresql":
        create_database(super_url, "storekeeper_platform")
        env["STOREKEEPER_DATABASE_URL"] = pg.url("storekeeper_platform")
    password = secrets.token_urlsafe(18)
    log(f"setting up a storekeeper home ({args.platform_db} platform database), service, store, admin")
    run_cli(env, "db", "configure", "--username", ADMIN, "--password-stdin", stdin=password + "\n")
    run_cli(env, "services", "create", "persistent", "--name", SERVICE, "--url", pg.url(driver="postgresql"))
    run_cli(env, "app-settings", "set", APP, SETTING, SERVICE)
    run_cli(env, "syncstores", APP, "--yes")

    # -- peer: its database and table on the same server.
    create_database(super_url, PEER_DB)
    peer_env = {k: v for k, v in os.environ.items() if not k.startswith("STOREKEEPER_")}
    peer_env["FLASK_LINKS_DATABASE_URL"] = pg.url(PEER_DB)
    subprocess.run([sys.executable, str(PEER_DIR / "app.py"), "init-db"], env=peer_env, check=True, timeout=60)

    token: str | None = None
    pg_pid = int((Path(pg.datadir) / "postmaster.pid").read_text().split()[0])
    our_table = find_links_table(super_url, OUR_DB)
    peer_table = find_links_table(super_url, PEER_DB)
    result: dict[str, Any] = {
        "config": {
            "ours": f"storekeeper start --server {args.server} --workers W --log-level warning; "
            f"{args.platform_db} platform database; GET {OUR_PATH}?limit={PAGE}; POST {OUR_PATH} with a bearer token",
            "peer": "gunicorn --workers W --worker-class sync app:app (bench/flask_links, "
            f"Flask + Flask-SQLAlchemy, psycopg 3); GET/POST {PEER_PATH}, no auth",
            "postgresql": "one private LocalServer.temporary(fast=True) for both: fsync, synchronous_commit, "
            "full_page_writes off",
            "configurations": args.configs,
        },
        "targets": TARGETS,
        "configurations": {},
    }
    for index, (workers, connections) in enumerate(args.configs_parsed):
        label = f"{workers}w-c{connections}"
        conf = argparse.Namespace(**{**vars(args), "workers": workers, "connections": connections})
        primary = index == 0
        our_port, peer_port = free_port(), free_port()
        log(
            f"[{label}] starting ours (storekeeper start --server {args.server} --workers {workers}) "
            f"and the peer (gunicorn -w {workers} -k sync)"
        )
        ours = Server(
            "ours",
            [
                str(BIN / "storekeeper"),
                "start",
                "--server",
                args.server,
                "--workers",
                str(workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(our_port),
                "--log-level",
                "warning",
            ],
            env,
            our_port,
            tmp / f"ours-{label}.log",
        )
        servers.append(ours)
        peer = Server(
            "peer",
            [
                str(BIN / "gunicorn"),
                "--workers",
                str(workers),
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{peer_port}",
                "--log-level",
                "warning",
                "app:app",
            ],
            peer_env,
            peer_port,
            tmp / f"peer-{label}.log",
            cwd=PEER_DIR,
        )
        servers.append(peer)
        ours.wait_ready("/healthz")
        ours.wait_ready(f"{OUR_PATH}?limit=1")
        peer.wait_ready(PEER_PATH)
        if token is None:
            status, body = http_request(
                our_port, "POST", "/api/v1/auth/token", {"username": ADMIN, "password": password}
            )
            if status not in (200, 201):
                raise BenchError(f"POST /api/v1/auth/token: {status} {body[:300]!r}")
            token = json.loads(body)["token"]
        targets = {
            "ours": {
                "port": our_port,
                "pid": ours.proc.pid,
                "db": OUR_DB,
                "table": our_table,
                "token": token,
                "get": f"{OUR_PATH}?limit={PAGE}",
                "post": OUR_PATH,
            },
            "peer": {
                "port": peer_port,
                "pid": peer.proc.pid,
                "db": PEER_DB,
                "table": peer_table,
                "token": "",
                "get": PEER_PATH,
                "post": PEER_PATH,
            },
        }
        # Every wrk run ends by waiting until both servers and PostgreSQL are idle again.
        conf.idle_roots = [ours.proc.pid, peer.proc.pid, pg_pid]
        result["configurations"][label] = run_configuration(
            conf, wrk, lua, super_url, pg_pid, targets, primary=primary, label=label
        )
        result["configurations"][label]["servers_alive_at_end"] = {
            "ours": ours.proc.poll() is None,
            "peer": peer.proc.poll() is None,
        }
        for server in (ours, peer):
            server.stop()
            servers.remove(server)
    result["all_met"] = all(c["all_met"] for c in result["configurations"].values())
    return result


def run_configuration(
    args: argparse.Namespace,
    wrk: str,
    lua: Path,
    super_url: str,
    pg_pid: int,
    targets: dict[str, dict[str, Any]],
    *,
    primary: bool,
    label: str,
) -> dict[str, Any]:
    """Measure one (workers, connections) configuration; the primary one runs every scenario."""
    tag = secrets.token_hex(3)
    result: dict[str, Any] = {
        "workers": args.workers,
        "connections": args.connections,
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "timeout_s": args.timeout,
            "rounds": args.rounds,
            "command": f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --timeout={args.timeout:g}s "
            "--latency -s links.lua URL -- get|post TAG [TOKEN]",
        },
    }

    def measure(name: str, who: str, mode: str, round_: int) -> dict[str, Any]:
        t = targets[who]
        path = t["get"] if mode == "get" else t["post"]
        before = count_rows(super_url, t["db"], t["table"]) if mode == "post" else 0
        run_ = wrk_run(
            wrk, lua, t["port"], path, mode, f"{tag}-{name}-{round_}", t["token"], args, args.duration, t["pid"], pg_pid
        )
        if mode == "post":
            time.sleep(1.0)  # let the requests wrk abandoned at its deadline finish on the server
            run_["rows_added"] = count_rows(super_url, t["db"], t["table"]) - before
            run_["rows_added_minus_201s"] = run_["rows_added"] - run_["created_201"]
        return run_

    def scenario(name: str, mode: str, rows: int) -> dict[str, Any]:
        """Warm both up, then measure ``--rounds`` times, alternating which server goes first."""
        out: dict[str, Any] = {"rows_in_table": rows}
        if mode == "get":
            out["rows_returned"] = {"ours": min(rows, PAGE), "peer": rows}
        for who in ("ours", "peer"):
            t = targets[who]
            path = t["get"] if mode == "get" else t["post"]
            log(f"[{label}] {name}: {who} warm-up {args.warmup:g}s")
            wrk_run(wrk, lua, t["port"], path, mode, f"{tag}-{name}-warm", t["token"], args, args.warmup)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
        for i in range(args.rounds):
            for who in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
                log(f"[{label}] {name}: {who} round {i + 1}/{args.rounds}, {args.duration:g}s")
                runs[who].append(measure(name, who, mode, i))
        for who in ("ours", "peer"):
            out[who] = aggregate(runs[who])
        return out

    scenarios: dict[str, Any] = {}
    gets = (("get_50", SMALL_ROWS), ("get_5000", LARGE_ROWS)) if primary else (("get_50", SMALL_ROWS),)
    for name, rows in gets:
        for who in ("ours", "peer"):
            t = targets[who]
            set_rows(super_url, t["db"], t["table"], rows, f"{tag}-{name}")
            status, body = http_request(t["port"], "GET", t["get"])
            got = len(json.loads(body)["links"]) if status == 200 else None
            expected = min(rows, PAGE) if who == "ours" else rows
            if got != expected:
                raise BenchError(f"{who} GET {t['get']} with {rows} rows: {status}, {got} links (expected {expected})")
        scenarios[name] = scenario(name, "get", rows)
    # POST: wrk for throughput and latency (the table starts at 5,000 rows), then the exact count.
    for who in ("ours", "peer"):
        t = targets[who]
        set_rows(super_url, t["db"], t["table"], LARGE_ROWS, f"{tag}-post")
    scenarios["post"] = scenario("post", "post", LARGE_ROWS)

    if primary:
        exact: dict[str, Any] = {
            "method": f"{args.exact_posts} POSTs with unique URLs from {args.connections} threads, "
            "one keep-alive connection each (http.client); rows counted before and after"
        }
        for who in ("ours", "peer"):
            t = targets[who]
            log(f"[{label}] post_exact: {who}, {args.exact_posts} POSTs")
            before = count_rows(super_url, t["db"], t["table"])
            out = exact_posts(t["port"], t["post"], t["token"], args.exact_posts, args.connections, f"{tag}-{who}")
            out["rows_added"] = count_rows(super_url, t["db"], t["table"]) - before
            out["created_201"] = out["statuses"].get("201", 0)
            out["stored_equals_created"] = out["rows_added"] == out["created_201"]
            out["errors"] = args.exact_posts - out["created_201"]
            exact[who] = out
        scenarios["post_exact"] = exact

    # -- ratios and targets.
    met: dict[str, Any] = {}
    for name in [n for n in ("get_50", "get_5000", "post") if n in scenarios]:
        s = scenarios[name]
        s["ratio_rps"] = ratio(s["ours"]["rps"], s["peer"]["rps"])
        s["ratio_p99"] = ratio(s["ours"]["p99_ms"], s["peer"]["p99_ms"])
        s["ratio_cpu"] = ratio(s["ours"].get("server_cpu_ms_per_request"), s["peer"].get("server_cpu_ms_per_request"))
        met[name] = {
            "throughput_at_least_target": s["ratio_rps"] is not None
            and s["ratio_rps"] >= TARGETS["throughput_ratio_min"],
            "p99_not_above_peer": s["ratio_p99"] is not None and s["ratio_p99"] <= TARGETS["p99_ratio_max"],
            "zero_errors": s["ours"]["errors"] == 0,
        }
    if "get_5000" in met:  # the peer returns every row: "stays ahead" is the target there
        met["get_5000"]["throughput_at_least_target"] = (scenarios["get_5000"]["ratio_rps"] or 0) >= 1.0
    if "post_exact" in scenarios:
        met["post_exact"] = {
            "zero_errors": scenarios["post_exact"]["ours"]["errors"] == 0,
            "stored_equals_created": scenarios["post_exact"]["ours"]["stored_equals_created"],
        }
    result["scenarios"] = scenarios
    result["met"] = met
    result["all_met"] = all(v for m in met.values() for v in m.values())
    return result


def print_table(result: dict[str, Any]) -> None:
    lines: list[str] = []
    for label, conf in result["configurations"].items():
        s = conf["scenarios"]
        w = conf["wrk"]
        lines += [
            "",
            (
                f"[{label}] wrk -t{w['threads']} -c{w['connections']} -d{w['duration_s']:g}s, medians of "
                f"{w['rounds']} rounds (after a {w['warmup_s']:g}s warm-up); {conf['workers']} workers each"
            ),
            (
                f"{'scenario':<10} {'server':<5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
                f"{'bytes/resp':>10} {'app CPU ms/req':>14} {'PG CPU ms/req':>13} {'load':>5}"
            ),
        ]
        for name in [n for n in ("get_50", "get_5000", "post") if n in s]:
            for who in ("ours", "peer"):
                r = s[name][who]
                lines.append(
                    f"{name:<10} {who:<5} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                    f"{r['errors']:>7} {r['bytes_per_response'] or 0:>10.0f} "
                    f"{r.get('server_cpu_ms_per_request') or 0:>14.3f} "
                    f"{r.get('postgresql_cpu_ms_per_request') or 0:>13.3f} {r['loadavg_1m_max']:>5.1f}"
                )
            lines.append(
                f"{'':<10} {'ratio':<5} {s[name]['ratio_rps']:>9.3f} {'':>8} {s[name]['ratio_p99']:>8.3f} "
                f"{'':>7} {'':>10} {s[name]['ratio_cpu'] or 0:>14.3f}"
            )
        for who in ("ours", "peer"):
            p = s["post"][who]
            line = (
                f"post {who}: wrk 201s {p['created_201']}, rows added {p['rows_added']} "
                f"(diff {p['rows_added_minus_201s']}: requests in flight when wrk stopped)"
            )
            if "post_exact" in s:
                e = s["post_exact"][who]
                line += (
                    f"; exact: {e['sent']} sent, {e['created_201']} x 201, rows added {e['rows_added']}, "
                    f"equal: {e['stored_equals_created']}"
                )
            lines.append(line)
        lines.append(f"[{label}] targets met: {conf['all_met']}  ({json.dumps(conf['met'])})")
    lines.append("(req/s, p50, p99, CPU: medians over rounds; errors: sum; load: highest 1-minute load average)")
    lines.append(f"all targets met: {result['all_met']}")
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
