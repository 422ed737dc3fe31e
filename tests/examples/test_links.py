"""The example app in examples/links, as a user meets it.

Through the real portal against its real store (set up with the CLI, signed in
with tokens from the REST API, rows checked with psycopg), and its own tests
run with ``storekeeper test links`` as a real process.
"""

from __future__ import annotations

import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from storekeeper.config import load_config
from storekeeper.portal.app import create_app
from tests.conftest import _admin_params
from tests.core.conftest import database_exists, rows

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note preferring another httpx fork
    from fastapi.testclient import TestClient

APP = "links"
STORE_DB = "links_primary_db"
LINKS = "/apps/links/links"
PROBLEM_JSON = "application/problem+json"
ADMIN_PASSWORD = "admin-password-1"
READER_PASSWORD = "reader-password-1"
DROP_TABLE = "https://x.example/'); DROP TABLE links;--"
#: Tests in examples/links/links/tests (``storekeeper test links`` must report exactly this many passed).
APP_TESTS = 53
#: Test copies and templates of the links app's stores.
COPIES_RE = re.compile(r"(test\d*|tpl)_links_")


def cli_ok(result: subprocess.CompletedProcess[str]) -> str:
    """Assert a CLI run exited 0; return its output."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def problem(response: Any, status: int, *needles: str) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status`` whose detail or hint mention ``needles``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    doc = response.json()
    assert doc["status"] == status and doc["detail"] and doc.get("hint")
    assert "Traceback" not in response.text
    for needle in needles:
        assert needle in f"{doc['detail']}\n{doc['hint']}", doc
    return doc  # type: ignore[no-any-return]


def stored(pg_admin_url: str) -> list[tuple[int, str]]:
    """Return (id, url) of every row of the real store's links table, by id."""
    return [(r[0], r[1]) for r in rows(pg_admin_url, STORE_DB, "SELECT id, url FROM links ORDER BY id")]


def links_table_exists(pg_admin_url: str) -> bool:
    return rows(pg_admin_url, STORE_DB, "SELECT to_regclass('public.links') IS NOT NULL")[0][0] is True


def drop_links_copies(pg_admin_url: str) -> None:
    """Drop every test copy and template of the links app's stores."""
    with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
        for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall():
            if COPIES_RE.match(name):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def copies_left(admin_conn: psycopg.Connection[Any]) -> list[str]:
    names = [r[0] for r in admin_conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()]
    return [name for name in names if COPIES_RE.match(name) and not name.startswith("tpl_")]


@pytest.fixture
def no_links_copies(pg_admin_url: str) -> Iterator[None]:
    """Start and end without test copies or templates of the links app."""
    drop_links_copies(pg_admin_url)
    yield
    drop_links_copies(pg_admin_url)


@pytest.fixture
def links_synced(service: str, run_cli) -> str:  # type: ignore[no-untyped-def]
    """The links app with primary_db on the test service and synced, all with the CLI; yields the service."""
    cli_ok(run_cli("app-settings", "set", APP, "primary_db", service))
    output = cli_ok(run_cli("syncstores", APP))
    assert "links/primary_db" in output, output
    return service


@pytest.fixture
def portal(sk_home) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client on the portal built from the test home's config (not in testing mode)."""
    with TestClient(create_app(load_config())) as client:
        yield client


def sign_in(portal: TestClient, username: str, password: str) -> dict[str, str]:
    """Trade a password for an API token through the REST API; return the Authorization header."""
    response = portal.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_the_app_is_installed_and_declares_its_store(platform, run_cli) -> None:  # type: ignore[no-untyped-def]
    output = cli_ok(run_cli("app-settings", "list", APP))
    assert "primary_db" in output


def test_the_api_answers_503_until_the_store_is_assigned_and_synced(service, run_cli, portal) -> None:  # type: ignore[no-untyped-def]
    problem(portal.get(LINKS), 503, "primary_db", f"app-settings set {APP}")
    cli_ok(run_cli("app-settings", "set", APP, "primary_db", service))
    problem(portal.get(LINKS), 503, "not initialized", f"syncstores {APP}")
    cli_ok(run_cli("syncstores", APP))
    assert portal.get(LINKS).json() == {"links": [], "next": None}


def test_end_to_end_through_the_portal_against_the_real_store(  # type: ignore[no-untyped-def]
    links_synced, run_cli, portal, pg_admin_url
) -> None:
    # An admin made with the CLI, as on a new portal; a viewer made by the admin through the REST API.
    cli_ok(run_cli("db", "configure", "--username", "admin", "--password-stdin", input=ADMIN_PASSWORD + "\n"))
    admin = sign_in(portal, "admin", ADMIN_PASSWORD)
    created = portal.post(
        "/api/v1/users", headers=admin, json={"username": "reader", "password": READER_PASSWORD, "role": "viewer"}
    )
    assert created.status_code == 201, created.text
    reader = sign_in(portal, "reader", READER_PASSWORD)

    # Reading is public; the store starts empty.
    assert portal.get(LINKS).json() == {"links": [], "next": None}

    # Writing needs a token: nothing is stored without one.
    problem(portal.post(LINKS, json={"url": "https://example.com/"}), 401, "/api/v1/auth/token")
    problem(portal.post(LINKS, json={"url": "https://example.com/"}, headers={"Authorization": "Bearer nope"}), 401)
    assert stored(pg_admin_url) == []

    # Any signed-in user may save links, viewers too.
    first = portal.post(LINKS, json={"url": "https://example.com/first"}, headers=reader)
    assert first.status_code == 201, first.text
    link = first.json()
    assert link["url"] == "https://example.com/first"
    assert first.headers["location"] == f"{LINKS}/{link['id']}"
    assert portal.get(first.headers["location"]).json() == link
    assert stored(pg_admin_url) == [(link["id"], "https://example.com/first")]
    (created_at,) = rows(pg_admin_url, STORE_DB, "SELECT created_at FROM links WHERE id = %s", (link["id"],))[0]
    assert datetime.fromisoformat(link["created_at"]) == created_at  # the same instant ...
    assert link["created_at"].endswith("+00:00")  # ... shown in UTC

    # Bad URLs and bodies are refused with problem documents and store nothing.
    for bad in ("ftp://example.com/f", "javascript:alert(1)", "https://", "https://e.example/" + "a" * 2100, 7):
        problem(portal.post(LINKS, json={"url": bad}, headers=admin), 400, "http or https")
    problem(portal.post(LINKS, json={"href": "https://example.com/"}, headers=admin), 400, '"url"')
    problem(portal.post(LINKS, headers=admin), 400)
    problem(portal.post(LINKS, content=b"https://example.com/", headers={**admin, "Content-Type": "text/plain"}), 415)
    bad_json = portal.post(LINKS, content=b'{"url": ', headers={**admin, "Content-Type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.headers["content-type"].startswith(PROBLEM_JSON)
    assert len(stored(pg_admin_url)) == 1

    # SQL in a URL is stored as plain text, verbatim, and the table survives.
    injected = portal.post(LINKS, json={"url": DROP_TABLE}, headers=admin)
    assert injected.status_code == 201, injected.text
    assert links_table_exists(pg_admin_url)
    assert stored(pg_admin_url)[-1] == (injected.json()["id"], DROP_TABLE)
    assert portal.get(f"{LINKS}/{injected.json()['id']}").json()["url"] == DROP_TABLE

    # ... and SQL in a cursor, limit or id is refused, changing nothing.
    problem(portal.get(LINKS, params={"cursor": "' OR 1=1 --"}), 400, "cursor")
    assert portal.get(LINKS, params={"limit": "' OR 1=1 --"}).status_code == 422
    problem(portal.get(f"{LINKS}/1 OR 1=1"), 404)
    assert links_table_exists(pg_admin_url)
    assert len(stored(pg_admin_url)) == 2

    # Pages, newest first, follow the cursor to the end.
    for n in range(5):
        assert portal.post(LINKS, json={"url": f"https://example.com/{n}"}, headers=admin).status_code == 201
    expected = [url for _, url in reversed(stored(pg_admin_url))]
    assert len(expected) == 7
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = portal.get(LINKS, params=params)
        assert page.status_code == 200, page.text
        seen += [link["url"] for link in page.json()["links"]]
        pages += 1
        cursor = page.json()["next"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3
    problem(portal.get(f"{LINKS}/999999"), 404, "999999")


def test_storekeeper_test_runs_the_apps_own_tests_on_copies(  # type: ignore[no-untyped-def]
    links_synced, no_links_copies, run_cli, admin_conn, pg_admin_url
) -> None:
    with psycopg.connect(**{**_admin_params(pg_admin_url), "dbname": STORE_DB}, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("INSERT INTO links (url) VALUES (%s)", ("https://only-in-the-real-store.example/",))
    real_before = stored(pg_admin_url)

    result = run_cli("test", APP, "--", "-p", "no:cacheprovider", timeout=600)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(rf"\b{APP_TESTS} passed\b", output), output
    assert not re.search(r"\b(failed|errors?)\b", output), output
    assert stored(pg_admin_url) == real_before  # the real store was never touched
    assert copies_left(admin_conn) == []  # the copies are gone; the template stays for the next run
    assert database_exists(admin_conn, "tpl_links_primary_db")
    cli_ok(run_cli("test", APP, "--clean"))
    assert not database_exists(admin_conn, "tpl_links_primary_db")


def test_link_ids_outside_the_id_columns_range_are_a_404_not_a_500(links_synced, portal) -> None:  # type: ignore[no-untyped-def]
    for link_id in ("9223372036854775808", "2147483648", "-1", "0", "99999999999999999999999999", "abc", "1e3", "%00"):
        problem(portal.get(f"{LINKS}/{link_id}"), 404, "There is no link")
    for cursor in ("9223372036854775808", "-5", "abc"):
        problem(portal.get(LINKS, params={"cursor": cursor}), 400, "cursor")


def test_a_lock_on_the_table_costs_a_request_at_most_the_statement_timeout(  # type: ignore[no-untyped-def]
    links_synced, portal, pg_admin_url
) -> None:
    """The endpoints run on the event loop (no thread hop), so a statement may not wait long: a table
    locked by someone else (a migration, a maintenance job) gets a 503 with Retry-After after the
    app's statement_timeout, not a request (and a worker) held up for as long as the lock lasts."""
    from links.routes import STATEMENT_TIMEOUT_MS

    assert portal.get(LINKS).status_code == 200
    with psycopg.connect(**{**_admin_params(pg_admin_url), "dbname": STORE_DB}) as locker:  # type: ignore[arg-type]
        locker.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = portal.get(LINKS)
        waited = time.monotonic() - started
        problem(response, 503, "links")
        assert response.headers["retry-after"]
        assert STATEMENT_TIMEOUT_MS / 1000 * 0.9 <= waited < STATEMENT_TIMEOUT_MS / 1000 + 4, waited
        locker.rollback()
    assert portal.get(LINKS).status_code == 200
