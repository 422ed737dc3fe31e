"""Two installations on one server: neither touches the other's databases or roles.

Two homes (each its own SQLite platform database and secret key) register the
same server as service ``local`` and sync the same app. Installation A makes its
stores, a dynamic store and a test copy; then B syncs, refreshes, drops, creates,
rotates, makes test copies and cleans them; then A does the same to a store only
B made. Before and after each of those commands the test fingerprints the other
installation's databases and roles (oid, marker, validity, owner, password
verifier, and the rows its initializer wrote): any change is a *touched* object.
A command that works on the other's store must stop with an error that says
"another storekeeper installation" and names its installation id. Finally
neither home may list a store ready whose database is missing or the other's.

Figures: tried (commands one installation ran on the other's stores) / failed
(did not stop naming the other installation, or claimed success) / lost (the
other's objects changed, stores wrongly listed ready).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from storekeeper.platform import Platform
from tests.reliability import crash_app
from tests.reliability.conftest import (
    APP,
    Figures,
    Home,
    admin_connect,
    assign_crash_app,
    catalog,
    installation_id,
    register_service,
    store_check,
    summary,
    wipe,
)

pytestmark = pytest.mark.slow

CREATE = ["stores", "create", APP, "{name}", "-c", "primary", "--initializer", crash_app.INITIALIZER, "--json"]
#: An app's own process in testing mode: its store resolves to a test copy (made from a template).
TEST_COPY = """
from sqlalchemy import text
from tests.reliability.crash_app import App
with App.get_persistent_store_database("s1").connect() as conn:
    print(conn.execute(text("SELECT count(*) FROM init_log")).scalar())
"""
ANOTHER = "another storekeeper installation"


def create(name: str) -> list[str]:
    return [a.format(name=name) for a in CREATE]


@pytest.fixture
def two_homes(
    platform: Platform, sk_home: Path, installed: Path, pg_admin_url: str, postgis_available: bool, tmp_path: Path
) -> Iterator[tuple[Home, Home, list[str]]]:
    """Homes A (the test's) and B, each with service "local" on the test server and crash_app assigned to it."""
    wipe(pg_admin_url)
    register_service(platform, "local", pg_admin_url)
    statics = assign_crash_app(platform, "local", spatial=postgis_available)
    a = Home(sk_home, installed, platform, label="A")
    b = Home(tmp_path / "home-b", installed, label="B")
    register_service(b.platform, "local", pg_admin_url)
    assign_crash_app(b.platform, "local", spatial=postgis_available)
    yield a, b, statics
    wipe(pg_admin_url)


def fingerprint(url: str, names: set[str]) -> dict[str, Any]:
    """Catalog entries of ``names`` (``database X``/``role X``) plus the rows in each database that allows connections."""
    with admin_connect(url) as conn:
        found: dict[str, Any] = {k: v for k, v in catalog(conn).items() if k in names}
        for key in list(found):
            if not key.startswith("database "):
                continue
            name = key.removeprefix("database ")
            row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not row or not row[0]:
                continue
            try:
                with admin_connect(url, name) as db:
                    rows = db.execute("SELECT id, first_time, pid, home FROM init_log ORDER BY id").fetchall()
            except psycopg.Error as err:
                rows = [("unreadable", str(err).splitlines()[0])]
            found[f"rows of {name}"] = rows
    return found


class Foreign:
    """Runs one installation's commands on the other's stores and counts what they do to them."""

    def __init__(self, url: str, figures: Figures) -> None:
        self.url = url
        self.figures = figures

    def run(
        self, actor: Home, other: Home, others: set[str], args: list[str], *, refuse: bool, python: str | None = None
    ) -> tuple[int, str]:
        """Run ``args`` (or a Python snippet in testing mode) in ``actor``'s home; check ``other``'s objects."""
        before = fingerprint(self.url, others)
        if python is not None:
            done = actor.python(python, STOREKEEPER_TESTING="1")
            code, out, err = done.returncode, done.stdout, done.stderr
        else:
            code, out, err = actor.run(*args)
        after = fingerprint(self.url, others)
        said = summary(out) if out.strip().startswith("{") else summary(err or out)
        what = "testing-mode process" if python is not None else f"storekeeper {' '.join(args)}"
        label = f"{actor.label}: {what}"
        self.figures.tried += 1
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            self.figures.lost += 1
            self.figures.problems.append(
                f"{label} changed the other installation's {', '.join(changed)} (exit {code}: {said})"
            )
        other_id = installation_id(other.path)
        named = ANOTHER in (out + err) and other_id is not None and other_id in (out + err)
        if refuse and (code == 0 or not named):
            self.figures.failed += 1
            wanted = (
                f"'{ANOTHER}' and id {other_id}" if other_id else f"'{ANOTHER}' and an installation id (none found)"
            )
            self.figures.problems.append(f"{label} exit {code}, did not stop naming {wanted}: {said}")
        return code, out + err


def check_listings(url: str, home: Home, label: str, others: set[str], figures: Figures) -> None:
    """No store listed ready (or part of an app listed ready) whose database is missing or the other's."""
    listed = home.stores()
    app_ready = home.app()["ready"]
    with admin_connect(url) as conn:
        theirs = {k: v for k, v in catalog(conn).items() if k in others}
        for name, info in listed.items():
            if not (info["initialized"] or (app_ready and info["kind"] == "static" and info["service"])):
                continue
            why = store_check(url, conn, info["database"], f"{APP}/{name}")
            if why is None and f"database {info['database']}" in theirs:
                why = "its database is the other installation's"
            if why is not None:
                figures.lost += 1
                figures.problems.append(f"{label} lists {name} ready but {why}")


def test_two_installations_on_one_server_never_touch_each_others_stores(
    two_homes: tuple[Home, Home, list[str]], pg_admin_url: str
) -> None:
    a, b, statics = two_homes
    figures = Figures("two installations on one server")
    foreign = Foreign(pg_admin_url, figures)

    # A makes its stores, a dynamic store and a test copy (with its template and test role).
    for args in (["syncstores", APP, "--json"], create("scen")):
        code, out, err = a.run(*args)
        assert code == 0, f"A: {args}: {out}{err}"
    done = a.python(TEST_COPY, STOREKEEPER_TESTING="1")
    assert done.returncode == 0, done.stdout + done.stderr
    with admin_connect(pg_admin_url) as conn:
        a_objects = set(catalog(conn))
    assert {f"database {APP}_{s}" for s in [*statics, "scen"]} <= a_objects, a_objects
    assert any(k.startswith("database tpl_") for k in a_objects), a_objects

    # B works on the same names: each command leaves A's objects alone, and stops naming A.
    foreign.run(b, a, a_objects, ["syncstores", APP, "--json"], refuse=True)
    foreign.run(b, a, a_objects, ["syncstores", APP, "--refresh", "--yes", "--json"], refuse=True)
    foreign.run(b, a, a_objects, ["stores", "drop", APP, "s1", "--yes"], refuse=True)
    foreign.run(b, a, a_objects, create("scen"), refuse=True)
    code, said = foreign.run(b, a, a_objects, ["stores", "rotate-credentials", APP, "--json"], refuse=False)
    if '"action": "rotated"' in said:
        figures.failed += 1
        figures.problems.append(f"B: rotate-credentials claims to have rotated A's store roles: {summary(said)}")
    foreign.run(b, a, a_objects, [], refuse=True, python=TEST_COPY)
    foreign.run(b, a, a_objects, ["test", "--clean", "--json"], refuse=False)

    # B makes a store of its own; A leaves it alone.
    code, out, err = b.run(*create("bonly"))
    assert code == 0, f"B: its own dynamic store: {out}{err}"
    with admin_connect(pg_admin_url) as conn:
        b_objects = {k for k in catalog(conn) if k.endswith(f"{APP}_bonly")}
    assert b_objects, "B's store bonly is not on the server"
    foreign.run(a, b, b_objects, create("bonly"), refuse=True)
    foreign.run(a, b, b_objects, ["stores", "drop", APP, "bonly", "--yes"], refuse=False)
    foreign.run(a, b, b_objects, ["test", "--clean", "--json"], refuse=False)
    foreign.run(a, b, b_objects, ["syncstores", APP, "--refresh", "--yes", "--json"], refuse=False)

    with admin_connect(pg_admin_url) as conn:
        a_now = set(catalog(conn)) - b_objects
    check_listings(pg_admin_url, a, "A", b_objects, figures)
    check_listings(pg_admin_url, b, "B", a_now, figures)
    figures.check()
