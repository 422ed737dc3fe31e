"""Kill a command at chosen points, then let the next command repair what was left, and count.

A :class:`KillPoint` says which command is killed (``kind``) and when: ``delay``
seconds after the command's first connection to the server, or as soon as one of
its backends runs a statement matching ``sql`` (a regular expression, e.g.
``DROP DATABASE``; found by polling ``pg_stat_activity`` every millisecond or so).
What is killed is either the server (SIGKILL of the postmaster, then a restart on
the same data directory and port; the command is the core, run in a thread of the
test) or the ``storekeeper`` process itself (a real CLI process).

For each point :meth:`KillRun.run` then checks, from outside, with no SQL that
changes anything:

* after the kill, and again after the next command: every store ``stores list
  --json`` calls initialized, and every store of an app ``apps list --json``
  calls ready, exists on the server, is valid (``datconnlimit <> -2``), carries
  ``storekeeper:initialized APP/STORE`` and was initialized first-time exactly
  once (:func:`tests.reliability.conftest.store_check`); otherwise it is
  *wrongly ready*;
* the next command (the same drop or create again; otherwise a plain ``syncstores
  APP``) exits 0 and leaves every store as the command promises (ready, or
  dropped; a rotated store's recorded password logs in); otherwise it is *stuck*.

Each point's next command leaves the stores where the following point starts;
when it did not (already counted), :meth:`KillRun.set_up` resets them by hand.

Knobs (environment): ``RELIABILITY_POINTS`` keeps only the points whose ids contain
one of its comma-separated parts (``RELIABILITY_POINTS='refresh@sql,drop@5ms' pytest
tests/reliability -k kill``); ``RELIABILITY_PROCESSES=1`` runs the next command as a new
process rather than in the test's (see :meth:`Home.run`); ``RELIABILITY_TIMING=1`` prints
each step's time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from storekeeper import engines, stores
from storekeeper.stores import records
from tests.reliability import crash_app
from tests.reliability.conftest import (
    APP,
    CrashServer,
    Figures,
    Home,
    database_row,
    describe,
    store_check,
    summary,
    wipe,
)

DYNAMIC = "dyn"
#: The initializer's sleep (in the server) while a command is being killed: long enough that
#: the later delays still land inside the command.
KILL_DELAY = "0.3"
SYNC, REFRESH, DROP, CREATE, ROTATE = "sync", "refresh", "drop", "create", "rotate"


@dataclass(frozen=True)
class KillPoint:
    """Where a command is killed: ``delay`` seconds after its first connection, or during a statement.

    ``sql`` kills it while one of its backends runs a statement matching this
    regular expression. With ``hold``, the test first locks ``pg_shdescription``
    (where markers are written) in EXCLUSIVE mode, so every marker write waits,
    visibly: the kill then lands between a CREATE and its marker every time. For a
    killed process, the waiting statement is cancelled too (as if it was never sent).
    """

    kind: str
    delay: float | None = None
    sql: str | None = None
    hold: bool = False

    @property
    def id(self) -> str:
        when = (
            f"{self.delay * 1000:.0f}ms" if self.delay is not None else f"{'held' if self.hold else 'sql'}:{self.sql}"
        )
        return f"{self.kind}@{when}"


def _points(
    kind: str, delays: tuple[float, ...], statements: tuple[str, ...], held: tuple[str, ...] = ()
) -> tuple[KillPoint, ...]:
    return (
        *(KillPoint(kind, delay=d) for d in delays),
        *(KillPoint(kind, sql=s) for s in statements),
        *(KillPoint(kind, sql=s, hold=True) for s in held),
    )


#: The stores each command works on: the spatial one where making it is part of what is killed
#: (PostGIS costs a second a store), plain ones elsewhere.
STORES: dict[str, list[str]] = {
    SYNC: ["s1", "geo"],
    REFRESH: ["s1", "geo"],
    DROP: ["s1"],
    CREATE: ["s1"],
    ROTATE: ["s1", "s2"],
}

#: The kill points of each command, by what is killed: a spread of delays, and statements during
#: which a store is half made (or half dropped). Killing the server is cheap (the core runs in a
#: thread of the test), killing the process costs an interpreter start-up: it gets fewer.
#: Statements that take no time (ALTER DATABASE, DROP ROLE, COMMENT) cannot be aimed at by
#: polling pg_stat_activity: the delays land around them.
KILL_POINTS: dict[str, dict[str, tuple[KillPoint, ...]]] = {
    "server": {
        SYNC: _points(
            SYNC, (0.005, 0.3, 0.8), ("CREATE DATABASE", "CREATE EXTENSION", "pg_sleep"), ("COMMENT ON ROLE",)
        ),
        REFRESH: _points(REFRESH, (0.05, 0.5), ("DROP DATABASE", "CREATE DATABASE", "pg_sleep")),
        DROP: _points(DROP, (0.005, 0.015, 0.04), ("DROP DATABASE",)),
        CREATE: _points(CREATE, (0.05, 0.4), ("CREATE DATABASE", "pg_sleep"), ("COMMENT ON ROLE",)),
        ROTATE: _points(ROTATE, (0.005, 0.03), ("ALTER ROLE",)),
    },
    "process": {
        SYNC: _points(SYNC, (0.3,), ("CREATE DATABASE", "CREATE EXTENSION", "pg_sleep"), ("COMMENT ON ROLE",)),
        REFRESH: _points(REFRESH, (0.5,), ("DROP DATABASE", "pg_sleep")),
        DROP: _points(DROP, (0.005, 0.04), ("DROP DATABASE",)),
        CREATE: _points(CREATE, (0.05,), ("CREATE DATABASE", "pg_sleep"), ("COMMENT ON ROLE",)),
        ROTATE: _points(ROTATE, (0.005,), ("ALTER ROLE",)),
    },
}


def selected(target: str, kind: str) -> list[KillPoint]:
    """The kill points of ``kind``, narrowed by ``$RELIABILITY_POINTS`` when it is set."""
    wanted = [w.strip() for w in os.environ.get("RELIABILITY_POINTS", "").split(",") if w.strip()]
    return [p for p in KILL_POINTS[target][kind] if not wanted or any(w in p.id for w in wanted)]


class CoreCommand:
    """A core call run in a thread, with the little of ``Popen``'s interface :meth:`KillRun.aim` uses."""

    def __init__(self, call: Callable[[], object], log: Path) -> None:
        self.log = log
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        os.environ[crash_app.DELAY_ENV] = KILL_DELAY  # the initializer runs in this process
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            done = call()
            results = done if isinstance(done, list) else []
            said = json.dumps({"results": [r.to_dict() for r in results]} if results else {"done": repr(done)})
        except BaseException as err:
            said = f"Error: {type(err).__name__}: {err}"
        finally:
            os.environ.pop(crash_app.DELAY_ENV, None)
        self.log.write_text(said)

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else 0

    def wait(self, timeout: float = 60) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def kill(self) -> None:
        """A thread cannot be killed: let it finish (it is only ever killed with the server)."""
        self.wait(60)


class KillRun:
    """Runs kill points one after another in one home; each point's repair sets up the next."""

    def __init__(
        self, home: Home, server: CrashServer, statics: list[str], *, target: str, logs: Path, case: str
    ) -> None:
        self.home = home
        self.server = server
        self.statics = statics
        self.target = target  # "server" or "process"
        self.logs = logs
        self.figures = Figures(case, extra={"missed": 0, "hung": 0, "stuck": 0, "wrongly_ready": 0})
        self.wrongly_ready: set[tuple[str, str]] = set()
        self.drop_store = statics[0]

    # -- commands ---------------------------------------------------------------------

    def command(self, kind: str) -> list[str]:
        return {
            SYNC: ["syncstores", APP, "--json"],
            REFRESH: ["syncstores", APP, "--refresh", "--yes", "--json"],
            DROP: ["stores", "drop", APP, self.drop_store, "--yes"],
            CREATE: [
                "stores",
                "create",
                APP,
                DYNAMIC,
                "-c",
                "primary",
                "--initializer",
                crash_app.INITIALIZER,
                "--json",
            ],
            ROTATE: ["stores", "rotate-credentials", APP, "--json"],
        }[kind]

    def core_command(self, kind: str) -> Callable[[], object]:
        """The core call behind :meth:`command`, for running it in a thread of this process."""
        platform = self.home.platform
        return {
            SYNC: lambda: stores.sync_stores(platform, [APP]),
            REFRESH: lambda: stores.sync_stores(platform, [APP], refresh=True),
            DROP: lambda: stores.drop_store(platform, APP, self.drop_store),
            CREATE: lambda: stores.create_store(platform, APP, DYNAMIC, "primary", initializer=crash_app.INITIALIZER),
            ROTATE: lambda: stores.rotate_credentials(platform, APP),
        }[kind]

    def next_commands(self, kind: str) -> list[list[str]]:
        """What an admin runs after the crash: the drop or create again, else a plain sync."""
        if kind == DROP:  # (the sync that brings the store back for the next point is set-up)
            return [self.command(DROP)]
        if kind == CREATE:
            return [self.command(CREATE)]
        return [self.command(SYNC)]

    # -- one point ----------------------------------------------------------------------

    def run(self, point: KillPoint) -> None:
        t0 = time.monotonic()

        def lap(what: str) -> None:
            if os.environ.get("RELIABILITY_TIMING"):
                print(f"    {point.id} {what}: {time.monotonic() - t0:.2f}s")

        self.set_up(point)
        lap("set up")
        self.server.wait_quiet()
        lap("quiet")
        log = self.logs / f"{self.target}-{re.sub(r'[^A-Za-z0-9@_.-]+', '_', point.id)}.log"
        held = self.hold() if point.hold else None
        if self.target == "server":  # the server is what dies: the core runs in a thread of this process
            proc: Any = CoreCommand(self.core_command(point.kind), log)
        else:
            proc = self.home.popen(*self.command(point.kind), log=log, **{crash_app.DELAY_ENV: KILL_DELAY})
        try:
            outcome = self.aim(proc, point)
        finally:
            if held is not None:
                with contextlib.suppress(psycopg.Error):
                    held.close()  # (ends the transaction: the lock goes)
        lap("killed")
        if outcome == "missed":
            self.figures.extra["missed"] += 1
            said = summary(log.read_text(errors="replace") if log.exists() else "")
            self.figures.problems.append(f"{point.id}: missed (the command ended before the kill point): {said}")
            return
        self.figures.tried += 1
        if self.target == "server":
            if not proc.wait(timeout=60):
                self.figures.extra["hung"] += 1
                self.figures.failed += 1
                self.figures.problems.append(f"{point.id}: the command hung after the server died")
            self.server.restart()
        said = summary(log.read_text(errors="replace") if log.exists() else "")
        lap("restarted")
        self.check_claims(point, "after the kill", said)
        lap("checked")
        for cmd in self.next_commands(point.kind):
            code, said_next = self.next_command(cmd)
            lap(f"ran {cmd[:2]}")
            if code != 0:
                self.stuck(
                    point, f"next command `storekeeper {' '.join(cmd)}` exit {code}: {said_next}; {self.state()}"
                )
                break
            if cmd[:2] == ["stores", "drop"]:
                self.check_dropped(point, self.drop_store)
        else:
            if point.kind != DROP:
                self.check_done(point)
        self.check_claims(point, "after the next command", said)
        lap("done")

    def next_command(self, cmd: list[str]) -> tuple[int, str]:
        """Run the command an admin runs next (see :meth:`Home.run`): exit code and what it said."""
        code, out, err = self.home.run(*cmd)
        return code, summary(out) if out.strip() else summary(err)

    def aim(self, proc: Any, point: KillPoint, timeout: float = 90) -> str:
        """Kill the server or the process at ``point``; "killed", or "missed" when the command ended first."""
        pattern = re.compile(point.sql, re.IGNORECASE) if point.sql else None
        started: float | None = None
        deadline = time.monotonic() + (30 if point.hold else timeout)
        with self.server.connect(application_name="reliability-watch") as watch:
            while proc.poll() is None and time.monotonic() < deadline:
                rows = watch.execute(
                    "SELECT pid, state, query FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                    "AND application_name IS DISTINCT FROM 'reliability-hold'"
                ).fetchall()
                if rows and started is None:
                    started = time.monotonic()
                hits = []
                if pattern is not None:
                    hits = [pid for pid, state, query in rows if state == "active" and pattern.search(query or "")]
                elif started is not None:
                    assert point.delay is not None
                    time.sleep(max(0.0, started + point.delay - time.monotonic()))
                    hits = [0] if proc.poll() is None else []
                if hits:
                    self.kill(proc)
                    if self.target == "process" and point.hold:  # the statement it was waiting to run is never run
                        for pid in hits:
                            watch.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    return "killed"
                time.sleep(0.002)
        if proc.poll() is None:  # never reached the point in time: kill it anyway, count it as missed
            proc.kill()
            proc.wait()
        return "missed"

    def kill(self, proc: Any) -> None:
        if self.target == "server":
            self.server.crash()
        else:
            proc.kill()
            proc.wait()

    def hold(self) -> psycopg.Connection[Any]:
        """Lock the table markers are written to, so marker writes wait (see :class:`KillPoint`)."""
        conn = self.server.connect(application_name="reliability-hold")
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE pg_catalog.pg_shdescription IN EXCLUSIVE MODE")
        return conn

    # -- checks -------------------------------------------------------------------------

    def check_claims(self, point: KillPoint, stage: str, said: str) -> None:
        """Count stores listed initialized, and stores of an app listed ready, that the server contradicts."""
        listed = self.home.stores()
        app_ready = self.home.app()["ready"]
        with self.server.connect() as conn:
            for name, info in listed.items():
                claimed = info["initialized"] or (app_ready and info["kind"] == "static" and info["service"])
                if not claimed:
                    continue
                why = store_check(self.server.url, conn, info["database"], f"{APP}/{name}")
                if why is not None:
                    if (point.id, name) not in self.wrongly_ready:
                        self.wrongly_ready.add((point.id, name))
                        self.figures.extra["wrongly_ready"] += 1
                        self.figures.lost += 1
                    claim = "initialized" if info["initialized"] else "part of a ready app"
                    self.figures.problems.append(
                        f"{point.id} ({stage}): {name} listed {claim} (state={info['state']}, exists={info['exists']}) "
                        f"but {why} [{describe(conn, info['database'])}]; the killed command said: {said}"
                    )

    def check_done(self, point: KillPoint) -> None:
        """After the next command: every store it promises is ready (and a rotated store's password works)."""
        listed = self.home.stores()
        wanted = [*self.statics, *([DYNAMIC] if point.kind == CREATE else [])]
        with self.server.connect() as conn:
            for name in wanted:
                info = listed.get(name)
                database = f"{APP}_{name}"
                why = "not listed" if info is None else None
                if info is not None and not info["initialized"]:
                    why = f"listed state={info['state']} last_error={info['last_error']!r}"
                why = why or store_check(self.server.url, conn, database, f"{APP}/{name}")
                if why is None and point.kind == ROTATE:
                    why = self.login_fails(name)
                if why is not None:
                    self.stuck(point, f"{name} not repaired: {why} [{describe(conn, database)}]")

    def check_dropped(self, point: KillPoint, name: str) -> None:
        database = f"{APP}_{name}"
        listed = self.home.stores().get(name)
        with self.server.connect() as conn:
            row = database_row(conn, database)
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database,)).fetchone()
        if row is not None or role is not None or (listed is not None and listed["state"] != "absent"):
            self.stuck(
                point,
                f"drop not finished: database {'absent' if row is None else row}, role "
                f"{'absent' if role is None else 'left'}, listed {listed and listed['state']}",
            )

    def login_fails(self, name: str) -> str | None:
        """Why the store's recorded role password does not log in (None: it does)."""
        platform = self.home.platform
        with platform.session() as session:
            app = records.find_app(session, APP)
            row = records.find_setting(app, name) if app else None
            setting_id = row.id if row else None
        found = records.read_role(platform, setting_id) if setting_id is not None else None
        if found is None:
            return "no role recorded"
        role, password, _pending = found
        try:
            with self.server.connect(f"{APP}_{name}", user=role, password=password):
                return None
        except psycopg.OperationalError as err:
            return f"role {role} cannot log in with its recorded password: {str(err).strip().splitlines()[-1]}"

    def stuck(self, point: KillPoint, why: str) -> None:
        self.figures.extra["stuck"] += 1
        self.figures.failed += 1
        self.figures.problems.append(f"{point.id}: {why}")

    def state(self) -> str:
        """Records and server state of every store, on one line."""
        try:
            listed = self.home.stores()
        except AssertionError as err:
            return f"stores list failed: {err}"
        with self.server.connect() as conn:
            return "; ".join(
                f"{name}: record={info['state']} {describe(conn, info['database'])}" for name, info in listed.items()
            )

    # -- set-up -------------------------------------------------------------------------

    def hard_reset(self) -> None:
        """Start again from nothing: drop the stores on the server by hand, then through storekeeper."""
        self.server.ensure_running()
        wipe(self.server.url)
        for name in [*self.statics, DYNAMIC]:
            stores.drop_store(self.home.platform, APP, name)

    def set_up(self, point: KillPoint) -> None:
        """Bring the stores to where the command starts, with storekeeper's own calls (by hand if they fail).

        A failure here was already counted at the point before (its repair left this state).
        """
        self.server.ensure_running()
        engines.clear()
        try:
            self._set_up(point.kind)
        except Exception as err:
            self.figures.problems.append(
                f"before {point.id}: storekeeper could not set up ({type(err).__name__}: {summary(str(err))}); "
                "the stores were reset by hand"
            )
            self.hard_reset()
            self._set_up(point.kind)

    def _set_up(self, kind: str) -> None:
        """Absent stores for a sync, ready ones (and no dynamic store) otherwise."""
        platform = self.home.platform
        listed = self.home.stores()
        if kind == SYNC:
            for name in self.statics:
                stores.drop_store(platform, APP, name)
            with self.server.connect() as conn:
                left = [n for n in self.statics if database_row(conn, f"{APP}_{n}") is not None]
                left += [
                    f"role {r}"
                    for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s", (f"^{APP}_",))
                ]
            assert not left, f"still on the server after storekeeper dropped every store: {left}"
            return
        if DYNAMIC in listed:
            stores.drop_store(platform, APP, DYNAMIC)
        with self.server.connect() as conn:
            left = (
                database_row(conn, f"{APP}_{DYNAMIC}")
                or conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (f"{APP}_{DYNAMIC}",)).fetchone()
            )
        assert not left, f"the database or role of {DYNAMIC} is still on the server after storekeeper dropped it"
        with self.server.connect() as conn:
            broken = [n for n in self.statics if store_check(self.server.url, conn, f"{APP}_{n}", f"{APP}/{n}")]
        if broken:
            results = stores.sync_stores(platform, [APP])
            assert all(r.ok for r in results), "; ".join(f"{r.store}: {r.error}" for r in results if not r.ok)
        with self.server.connect() as conn:
            for n in self.statics:
                why = store_check(self.server.url, conn, f"{APP}_{n}", f"{APP}/{n}")
                assert why is None, f"{n}: {why}"
