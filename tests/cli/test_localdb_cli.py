"""storekeeper db init | start | stop | status: a local PostgreSQL server for the home."""

import json
import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from storekeeper import localdb
from storekeeper.config import load_config, read_file


@pytest.fixture
def local_home(run_cli, sk_home):
    # The server runs as the unprivileged postgres user when tests run as root: its
    # data directory must be somewhere that user can enter (pytest's tmp_path is not).
    base = Path(tempfile.mkdtemp(prefix="sk-localdb-"))
    base.chmod(0o755)
    assert run_cli("settings", "--set", "local.datadir", str(base / "pgdata")).returncode == 0
    yield run_cli
    run_cli("db", "stop")
    shutil.rmtree(base, ignore_errors=True)


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_before_init_says_how_to_create_it(local_home):
    result = local_home("db", "status")
    assert result.returncode == 0
    assert "storekeeper db init" in result.stdout
    assert _json(local_home("db", "status", "--json"))["initialized"] is False


def test_status_exits_3_for_a_stopped_server_with_or_without_json(local_home):
    _json(local_home("db", "init", "--json"))  # initialized, never started
    plain = local_home("db", "status")
    as_json = local_home("db", "status", "--json")
    assert (plain.returncode, as_json.returncode) == (3, 3), plain.stderr + as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["initialized"] is True and doc["running"] is False


def test_status_exit_code_is_the_same_with_json_before_init(local_home):
    plain = local_home("db", "status")
    as_json = local_home("db", "status", "--json")
    assert plain.returncode == as_json.returncode == 0


def test_start_runs_a_password_protected_loopback_server_and_is_idempotent(local_home, sk_home):
    first = _json(local_home("db", "start", "--json"))
    assert first["started"] is True and first["running"] is True
    assert first["url"].startswith("postgresql://postgres@127.0.0.1:")
    again = _json(local_home("db", "start", "--json"))
    assert again["started"] is False and again["pid"] == first["pid"]

    config = load_config(sk_home)
    password = localdb._password(config)
    assert password and password not in (sk_home / "config.yml").read_text()
    assert read_file(sk_home)["local.password"] != password  # stored encrypted
    with psycopg.connect(
        host="127.0.0.1", port=first["port"], user="postgres", password=password, dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT current_setting('listen_addresses')").fetchone()[0] == "127.0.0.1"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=first["port"], user="postgres", password="wrong", dbname="postgres")


def test_stop_twice_is_not_an_error_and_status_exits_3_when_stopped(local_home):
    _json(local_home("db", "start", "--json"))
    assert _json(local_home("db", "stop", "--json")) == {"stopped": True}
    assert _json(local_home("db", "stop", "--json")) == {"stopped": False}
    status = local_home("db", "status")
    assert status.returncode == 3
    assert "running" in status.stdout
    assert local_home("db", "status", "--json").returncode == 3


def test_stop_immediate_aborts_the_server_and_the_next_start_recovers(local_home):
    started = _json(local_home("db", "start", "--json"))
    assert _json(local_home("db", "stop", "--mode", "immediate", "--json")) == {"stopped": True}
    assert local_home("db", "status", "--json").returncode == 3
    again = _json(local_home("db", "start", "--json"))  # crash recovery, then serving as before
    assert again["started"] is True and again["running"] is True  # on its port, or a free one if taken meanwhile
    assert started["port"]


def test_stop_refuses_an_unknown_mode_and_changes_nothing(local_home):
    _json(local_home("db", "start", "--json"))
    refused = local_home("db", "stop", "--mode", "later")
    assert refused.returncode == 2
    assert "smart" in refused.stderr + refused.stdout
    assert local_home("db", "status", "--json").returncode == 0


def test_start_picks_another_port_when_5432_is_taken(local_home):
    holder = socket.socket()
    # A server a previous test stopped leaves the port in TIME_WAIT; that must not count as taken.
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", 5432))
        holder.listen()
    except OSError:
        holder.close()
        # Someone else (maybe a parallel test's server) has it and may let go at any time.
        pytest.skip("port 5432 is in use by another process, so this test cannot hold it")
    try:
        info = _json(local_home("db", "start", "--json"))
        assert info["running"] and info["port"] != 5432
    finally:
        holder.close()


def test_settings_listing_masks_the_local_password(local_home, sk_home):
    _json(local_home("db", "init", "--json"))
    listing = local_home("settings", "--json")
    rows = {r["key"]: r for r in json.loads(listing.stdout)}
    assert rows["local.password"]["value"] == "********"
    assert read_file(sk_home)["local.password"] not in listing.stdout


def test_status_reports_postgis_availability(local_home, postgis_available):
    info = _json(local_home("db", "start", "--json"))
    assert info["postgis_available"] is postgis_available


def test_start_can_register_the_server_as_a_service_that_works(local_home):
    info = _json(local_home("db", "start", "--register-service", "local", "--json"))
    assert info["service"] == "local"
    shown = _json(local_home("services", "show", "local", "--json"))
    assert shown["port"] == info["port"] and shown["host"] == "127.0.0.1"
    report = _json(local_home("services", "test", "local", "--json"))
    assert report["can_create_database"] is True
    # Registering again (e.g. after the port changed) updates instead of failing.
    assert _json(local_home("db", "start", "--register-service", "local", "--json"))["service"] == "local"
