"""Canary passwords go in; they must come out nowhere.

Unique random passwords are planted where storekeeper takes secrets:

* a service's password (``services create --password-stdin``, ``services update --password-stdin``);
* a superuser's password for ``services prepare-postgis`` (on standard input, in
  ``$STOREKEEPER_SUPERUSER_PASSWORD``, and typed at the prompt on a terminal);
* a portal user's password;

and every secret storekeeper makes itself is collected as it appears: store
roles' passwords and the service's new password after rotations (read from the
platform database with the home's key). Then everything a user, an operator or
another local user can see is searched for each of them, in plain text and in
base64:

* the output (stdout, stderr) of the CLI commands, as real processes: plain and
  ``--json`` forms, and failing ones;
* every REST API GET response and the responses of the calls that reach the
  server (test, rotate), every page of the web admin, ``/healthz``, ``/docs``;
* the portal's own log (its stdout and stderr, at log level debug);
* ``/proc/*/cmdline`` of every process, and ``/proc/*/environ`` of the portal's
  processes, while the portal serves with two workers;
* every file of the home, byte for byte: config, the secret key file, the SQLite
  platform database and its journal (secrets are encrypted there);
* the test server's log, where statements of the canary roles are logged in full
  (``log_statement = all``): passwords reach the server only as SCRAM verifiers.

It prints ``canary: N places checked, N secrets, found in N``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pty
import re
import secrets
import select
import termios
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg import sql
from sqlalchemy import select as sa_select
from sqlalchemy.engine import make_url

from storekeeper import apps, users
from storekeeper.backends import postgresql as pg
from storekeeper.config import load_config
from storekeeper.platform import ENCRYPTED_COLUMNS, open_platform
from storekeeper.portal.ui.main import PAGE_ROUTERS, PREFIX, ui_router
from tests.conftest import storekeeper_exe
from tests.core.conftest import connect_to, drop_service_user
from tests.reliability.conftest import Figures
from tests.reliability.live_portal import Portal, free_port

pytestmark = pytest.mark.slow

OWNER = "sk_canary_owner"
SUPERUSER = "sk_canary_super"
SERVICE = "canary_svc"
SERVICE_2 = "canary_svc_2"
APP = "my_first_app"
SETTINGS = ("example_db", "temp_db", "spatial_db", "primary", "creator")
ADMIN = "canary_admin"


def _canary(label: str) -> str:
    return f"cnry{label}{secrets.token_hex(12)}"


def _forms(secret: str) -> list[bytes]:
    """The secret as bytes, and the parts of its base64 that do not depend on what surrounds it."""
    raw = secret.encode()
    forms = [raw]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        forms.append(encoded[4 if shift else 0 : -4])
    return forms


class Places:
    """Everything searched: a name and its bytes. Secrets are added as storekeeper makes them."""

    def __init__(self) -> None:
        self.places: dict[str, bytes] = {}
        self.secrets: dict[str, str] = {}

    def add(self, name: str, content: str | bytes) -> None:
        data = content.encode(errors="replace") if isinstance(content, str) else content
        while name in self.places:
            name += "'"
        self.places[name] = data

    def secret(self, label: str, value: str) -> None:
        if value and value not in self.secrets.values():
            self.secrets[f"{label}#{len(self.secrets)}"] = value

    def found(self) -> list[str]:
        hits = []
        for secret_label, secret in self.secrets.items():
            forms = _forms(secret)
            hits += [f"{secret_label} in {name}" for name, data in self.places.items() if any(f in data for f in forms)]
        return hits


def _stored_secrets(places: Places) -> None:
    """Add every secret the platform database holds (decrypted with the home's current keys)."""
    platform = open_platform(load_config())
    try:
        with platform.session() as session:
            for column in ENCRYPTED_COLUMNS:
                for token in session.scalars(sa_select(column).where(column.is_not(None))):
                    places.secret(str(column), platform.decrypt(token, service="?"))
    finally:
        platform.close()


@pytest.fixture
def canary_roles(pg_admin_url: str) -> Iterator[dict[str, str]]:
    """A service user and a superuser on the test server with canary passwords, their statements logged in full."""
    passwords = {"service": _canary("svc"), "superuser": _canary("su")}
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, OWNER)
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(SUPERUSER)))
        for role, attributes, password in (
            (OWNER, "LOGIN CREATEDB CREATEROLE", passwords["service"]),
            (SUPERUSER, "LOGIN SUPERUSER", passwords["superuser"]),
        ):
            conn.execute(
                sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                    sql.Identifier(role), sql.SQL(attributes), sql.Literal(pg.scram_verifier(password))
                )
            )
            conn.execute(sql.SQL("ALTER ROLE {} SET log_statement = 'all'").format(sql.Identifier(role)))
    yield passwords
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, OWNER)
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(SUPERUSER)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(SUPERUSER)))


def _server_log(pg_admin_url: str) -> Path | None:
    """The test server's log file, when this process can read it."""
    with connect_to(pg_admin_url, "postgres") as conn:
        current = conn.execute("SELECT pg_current_logfile()").fetchone()
        datadir = Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    candidates = [datadir / current[0]] if current and current[0] else []
    candidates.append(datadir / "server.log")
    return next((p for p in candidates if p.is_file() and os.access(p, os.R_OK)), None)


def _echo_off(fd: int, wait: float = 5) -> bool:
    """Wait until the terminal behind ``fd`` does not echo; return whether it came to that."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            return True
        time.sleep(0.02)
    return False


def _run_on_terminal(args: list[str], env: dict[str, str], answer: str, timeout: float = 120) -> str:
    """Run a command on a pseudo-terminal, type ``answer`` at its prompt, and return everything it showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execve(args[0], args, env)
    transcript = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
            # Type the answer once the prompt is shown and the terminal stopped echoing (as a person would:
            # click prints the prompt before getpass turns echo off).
            if not answered and b"assword" in transcript and _echo_off(fd):
                os.write(fd, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    assert answered, f"no password prompt: {transcript.decode(errors='replace')}"
    return transcript.decode(errors="replace")


def _admin_pages(values: dict[str, str]) -> list[str]:
    """Every GET page of the web admin, path parameters filled in (the catch-all 404 left out)."""
    from fastapi.routing import APIRoute

    routes = [(PREFIX + r.path, r) for router in PAGE_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    routes += [(r.path, r) for r in ui_router.routes if isinstance(r, APIRoute) and "{path:path}" not in r.path]
    pages = []
    for path, route in routes:
        if "GET" not in route.methods:
            continue
        for key, value in values.items():
            path = path.replace("{" + key + "}", value)
        assert "{" not in path, f"no value for a parameter of {path}"
        pages.append(path)
    return pages


def _fill(path: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    return path


def test_canaries_are_found_nowhere(
    sk_home: Path, pg_admin_url: str, canary_roles: dict[str, str], run_cli: Callable[..., Any]
) -> None:
    started = time.monotonic()
    places = Places()
    service_pw, super_pw = canary_roles["service"], canary_roles["superuser"]
    admin_pw = _canary("adm")
    for label, value in (("service", service_pw), ("superuser", super_pw), ("portal user", admin_pw)):
        places.secret(label, value)
    u = make_url(pg_admin_url)
    where = f"{u.host or '127.0.0.1'}:{u.port or 5432}"
    log = _server_log(pg_admin_url)
    log_start = log.stat().st_size if log else 0
    commands: list[tuple[str, ...]] = []

    def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None, ok: bool | None = True) -> Any:
        commands.append(args)
        result = run_cli(*args, input=input, env=env)
        places.add(f"cli {' '.join(args)} (stdout)", result.stdout)
        places.add(f"cli {' '.join(args)} (stderr)", result.stderr)
        if ok is not None:
            assert (result.returncode == 0) == ok, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    # -- secrets in: a service, the superuser for PostGIS, store roles made by a sync --------------------
    cli(
        "services",
        "create",
        "persistent",
        "--name",
        SERVICE,
        "--connection",
        f"{OWNER}@{where}",
        "--password-stdin",
        input=service_pw + "\n",
    )
    cli(
        "services",
        "create",
        "persistent",
        "--name",
        SERVICE_2,
        "--url",
        f"postgresql://{OWNER}@{where}/postgres",
        "--password-stdin",
        "--json",
        input=service_pw + "\n",
    )
    cli(
        "services",
        "create",
        "persistent",
        "--name",
        SERVICE,
        "--connection",
        f"{OWNER}@{where}",
        "--password-stdin",
        input=service_pw + "\n",
        ok=False,
    )  # exists
    # A password typed into a URL by hand: the error must not repeat it.
    cli(
        "services",
        "create",
        "persistent",
        "--name",
        "bad_url",
        "--url",
        f"postgresql://{OWNER}:{service_pw}@{u.host}:badport/x",
        ok=False,
    )
    cli("services", "update", SERVICE, "--password-stdin", "--json", input=service_pw + "\n")
    cli("services", "update", SERVICE, "--port", "0", ok=False)
    cli("app-settings", "set", APP, SETTINGS[0], SERVICE)
    cli("app-settings", "set", APP, "nope", SERVICE, ok=False)
    platform = open_platform(load_config())
    try:  # the other settings through the core: one command is enough, and each costs seconds
        for setting in SETTINGS[1:]:
            apps.assign_service(platform, APP, setting, SERVICE)
    finally:
        platform.close()
    # PostGIS may be missing on the test server: the command may fail, its output is checked all the same.
    cli(
        "services",
        "prepare-postgis",
        SERVICE,
        "--superuser",
        SUPERUSER,
        "--password-stdin",
        input=super_pw + "\n",
        ok=None,
    )
    cli(
        "services",
        "prepare-postgis",
        SERVICE,
        "--superuser",
        SUPERUSER,
        "--json",
        env={"STOREKEEPER_SUPERUSER_PASSWORD": super_pw},
        ok=None,
    )
    cli(
        "services",
        "prepare-postgis",
        SERVICE,
        "--superuser",
        SUPERUSER,
        "--password-stdin",
        input="wrong-password\n",
        ok=None,
    )
    terminal_env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "200"}
    terminal_env.pop("STOREKEEPER_SUPERUSER_PASSWORD", None)
    places.add(
        "terminal: services prepare-postgis (prompt)",
        _run_on_terminal(
            [storekeeper_exe(), "services", "prepare-postgis", SERVICE, "--superuser", SUPERUSER],
            terminal_env,
            super_pw,
        ),
    )
    commands.append(("services", "prepare-postgis", "(prompt)"))
    cli("syncstores", APP, ok=None)  # spatial_db needs PostGIS
    cli("syncstores", APP, "--json", ok=None)
    _stored_secrets(places)
    assert len(places.secrets) >= 5, f"expected store roles' passwords too: {list(places.secrets)}"

    # -- reading: every read-only command, plain and --json, and failing ones (at once: none writes) ------
    reads: list[tuple[tuple[str, ...], bool | None]] = []
    for args in (
        ("services", "list"),
        ("services", "show", SERVICE),
        ("services", "test", SERVICE),
        ("apps", "list"),
        ("apps", "show", APP),
        ("app-settings", "list", APP),
        ("stores", "list"),
        ("stores", "list", APP),
        ("audit",),
        ("db", "status"),
        ("syncstores", APP, "--dry-run"),
        ("settings",),
    ):
        reads += [(args, None), ((*args, "--json"), None)]
    reads += [(("settings", "--get", key), None) for key in ("secret_key", "database_url")]
    reads += [
        (args, False)
        for args in (
            ("services", "show", "nope"),
            ("services", "test", "nope", "--json"),
            ("apps", "show", "nope"),
            ("stores", "list", "nope", "--json"),
            ("stores", "create", APP, "Bad Name", "--connection", "primary"),
            ("syncstores", "nope"),
        )
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda call: cli(*call[0], ok=call[1]), reads))
    cli("db", "upgrade", ok=None)

    # -- the portal, served for real: every page and GET, its processes, its log -------------------------
    platform = open_platform(load_config())
    try:
        users.upsert_user(platform, ADMIN, admin_pw, role="admin")
    finally:
        platform.close()
    with (
        Portal(sk_home, free_port(), workers=2, log_level="debug") as portal,
        httpx.Client(base_url=portal.url, timeout=60) as client,
    ):
        response = client.post("/api/v1/auth/token", json={"username": ADMIN, "password": admin_pw, "name": "canary"})
        assert response.status_code == 201, response.text
        token = response.json()["token"]
        api = {"Authorization": f"Bearer {token}"}
        job = client.post(f"/api/v1/apps/{APP}/sync", headers=api, json={})
        places.add("POST sync", job.text)
        values = {
            "name": SERVICE,
            "app": APP,
            "package": APP,
            "setting": "example_db",
            "username": ADMIN,
            "token_id": str(response.json()["id"]),
            "job_id": job.json()["id"],
            "link_id": "1",
            "gage_id": "1",
        }
        spec = client.get("/openapi.json").json()
        gets = [path for path, item in spec["paths"].items() if "get" in item]
        for path in gets:
            reply = client.get(_fill(path, values), headers=api)
            places.add(f"GET {path} -> {reply.status_code}", reply.text + str(reply.headers))
        for path in ("/healthz", "/docs", "/openapi.json"):
            places.add(f"anonymous GET {path}", client.get(path).text)
        for method, path in (
            ("POST", f"/api/v1/services/{SERVICE}/test"),
            ("POST", f"/api/v1/apps/{APP}/stores/rotate-credentials"),
            ("POST", f"/api/v1/services/{SERVICE}/rotate-password"),
        ):
            reply = client.request(method, path, headers=api)
            places.add(f"{method} {path} -> {reply.status_code}", reply.text + str(reply.headers))
        # The web admin, signed in with the password.
        login = client.get("/admin/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf, login.text[:500]
        signed_in = client.post(
            "/admin/login", data={"username": ADMIN, "password": admin_pw, "csrf_token": csrf.group(1)}
        )
        assert signed_in.status_code in (302, 303), signed_in.text[:500]
        pages = _admin_pages({**values, "name": SERVICE})
        for page in pages:
            reply = client.get(page)
            assert reply.status_code < 500, f"{page}: {reply.status_code}"
            places.add(f"page {page} -> {reply.status_code}", reply.text)
        # Every process's command line while the portal serves; the portal's environment.
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):  # gone, or not ours to read
                    places.add(f"cmdline of {proc.name}", (proc / "cmdline").read_bytes())
        for pid in portal.pids():
            places.add(f"environ of portal process {pid}", Path(f"/proc/{pid}/environ").read_bytes())
        assert len(portal.pids()) >= 3, "expected the portal and two workers"
    places.add("portal log (stdout and stderr)", portal.log.read_bytes())

    # -- changing: rotations, stores, removal -----------------------------------------------------------
    cli("stores", "rotate-credentials", APP)
    cli("stores", "rotate-credentials", APP, "--json")
    cli("services", "rotate-password", SERVICE, "--yes", "--json")
    cli("stores", "create", APP, "scratch", "--connection", "primary", "--json")
    cli("stores", "drop", APP, "scratch", "--yes")
    _stored_secrets(places)
    cli("settings", "rotate-secret-key", "--yes", "--json")
    cli("syncstores", APP, "--refresh", "--yes", ok=None)
    cli("services", "test", SERVICE, "--json")
    _stored_secrets(places)
    cli("app-settings", "reset", APP, "creator")
    cli("services", "remove", SERVICE_2, "--force", "--yes")
    cli("apps", "remove", APP, "--drop-stores", "--yes", ok=None)
    cli("services", "remove", SERVICE, "--force", "--yes")

    # -- at rest: every file of the home, and the server's log -----------------------------------------
    files = [p for p in sk_home.rglob("*") if p.is_file()]
    assert any(p.suffix in (".db", ".sqlite", ".sqlite3") for p in files), [str(p) for p in files]
    for path in files:
        places.add(f"file {path.relative_to(sk_home)}", path.read_bytes())
    statements = 0
    if log is not None:
        with log.open("rb") as f:
            f.seek(log_start)
            server_log = f.read()
        places.add("test server log", server_log)
        statements = server_log.count(b"statement: ")
        assert statements > 0, "log_statement = all logged nothing: the server log check would be empty"

    found = places.found()
    print(
        f"\ncanary: {len(places.places)} places checked ({len(commands)} CLI commands, {len(gets)} API GETs, "
        f"{len(pages)} admin pages, {len(files)} files, {statements} logged server statements), "
        f"{len(places.secrets)} secrets, "
        f"found in {len(found)}; {time.monotonic() - started:.0f} s"
    )
    assert len(commands) >= 40 and len(pages) >= 6 and len(gets) >= 15
    Figures(
        "secrets canary",
        tried=len(places.places),
        failed=len(found),
        extra={"secrets": len(places.secrets), "cli_commands": len(commands), "server_statements": statements},
        problems=found,
    ).check()
