"""``stores export|import|clone`` and ``backups`` as real processes: refusals, JSON, kill -9 mid-import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from storekeeper import stores
from storekeeper.stores import backups
from tests.conftest import storekeeper_exe
from tests.core.conftest import APP, EXAMPLE_DB, connect_to, rows, setting_record


@pytest.fixture
def synced(platform, my_first_app):  # type: ignore[no-untyped-def]
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    return my_first_app


def _values(pg_admin_url: str) -> list[int]:
    return [r[0] for r in rows(pg_admin_url, EXAMPLE_DB, "SELECT value FROM stream_gages ORDER BY value")]


def _sides(admin_conn: psycopg.Connection[Any]) -> list[str]:
    found = admin_conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (EXAMPLE_DB + "\\_%",))
    return sorted(r[0] for r in found.fetchall())


def _export(run_cli, file: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    done = run_cli("stores", "export", APP, "--database", "example_db", "-o", str(file), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_export_import_round_trip_from_the_command_line(run_cli, synced, pg_admin_url, admin_conn, tmp_path):
    file = tmp_path / "my file; $(rm -rf x).skbackup"  # a hostile path is just a path
    out = _export(run_cli, file)
    assert out["app"] == APP and out["bytes"] > 0 and Path(out["file"]) == file
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("DELETE FROM stream_gages")
    done = run_cli("stores", "import", APP, "--database", "example_db", str(file), "--replace", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "replaced"
    assert _values(pg_admin_url) == [1, 2]
    assert _sides(admin_conn) == []
    listed = run_cli("backups", str(tmp_path), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(b["file"], b["store"]) for b in json.loads(listed.stdout)] == [(file.name, "example_db")]
    table = run_cli("backups", str(tmp_path))
    assert file.name in table.stdout and "example_db" in table.stdout


def test_replace_without_yes_and_no_terminal_is_refused(run_cli, synced, pg_admin_url, tmp_path):
    file = tmp_path / "f.skbackup"
    _export(run_cli, file)
    done = run_cli("stores", "import", APP, "--database", "example_db", str(file), "--replace", input="")
    assert done.returncode == 1
    assert "--yes" in done.stderr
    assert _values(pg_admin_url) == [1, 2]


def test_import_over_an_existing_store_without_replace_names_replace(run_cli, synced, tmp_path):
    file = tmp_path / "f.skbackup"
    _export(run_cli, file)
    done = run_cli("stores", "import", APP, "--database", "example_db", str(file))
    assert done.returncode == 1
    assert "without --replace" in done.stderr
    assert f"Fix: storekeeper stores import {APP} --database example_db {file} --replace" in done.stderr


def test_a_truncated_file_is_refused_before_any_question(run_cli, synced, pg_admin_url, admin_conn, tmp_path):
    file = tmp_path / "f.skbackup"
    _export(run_cli, file)
    file.write_bytes(file.read_bytes()[:700])
    done = run_cli("stores", "import", APP, "--database", "example_db", str(file), "--replace", input="")
    assert done.returncode == 1
    assert "not a complete backup file" in done.stderr and "Nothing was changed" in done.stderr
    assert _values(pg_admin_url) == [1, 2] and _sides(admin_conn) == []


def test_export_needs_a_store_or_all(run_cli, synced, tmp_path):
    done = run_cli("stores", "export", APP, "-o", str(tmp_path / "x"))
    assert done.returncode == 1 and "--all" in done.stderr
    done = run_cli("stores", "export", APP, "--all", "-o", str(tmp_path / "all"), "--json")
    assert done.returncode == 0, done.stderr
    assert [r["store"] for r in json.loads(done.stdout)["results"]] == ["example_db"]


def test_backups_without_a_directory_lists_the_homes(run_cli, sk_home, synced):
    done = run_cli("backups")
    assert done.returncode == 1 and "backups" in done.stderr  # not made yet: says which directory
    (sk_home / "backups").mkdir()
    done = run_cli("backups", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == []


def test_clone_from_the_command_line(run_cli, synced, pg_admin_url):
    done = run_cli("stores", "clone", APP, "--database", "example_db", "--to", "copy_db", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["method"] == "template"
    assert rows(pg_admin_url, "my_first_app_copy_db", "SELECT count(*) FROM stream_gages") == [(2,)]


# -- kill -9 of the import ---------------------------------------------------------------------


def _popen_import(sk_home: Path, file: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home)}
    return subprocess.Popen(
        [storekeeper_exe(), "stores", "import", APP, "--database", "example_db", str(file), "--replace", "--yes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(admin_conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin_conn.execute(query, params).fetchone():  # type: ignore[arg-type]
            return
        time.sleep(0.002)
    raise AssertionError(f"never saw: {query}")


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its pg_restore
    proc.wait()


def _big_store(pg_admin_url: str) -> None:
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute(
            "INSERT INTO stream_gages (latitude, longitude, value) SELECT g, g, 100 + g FROM generate_series(1, 300000) g"
        )


def _old_store_intact(platform, pg_admin_url: str, admin_conn: psycopg.Connection[Any], count: int) -> None:  # type: ignore[no-untyped-def]
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT count(*) FROM stream_gages") == [(count,)]
    row = admin_conn.execute(
        "SELECT shobj_description(oid, 'pg_database'), datallowconn FROM pg_database WHERE datname = %s",
        (EXAMPLE_DB,),
    ).fetchone()
    assert row is not None and row[0].startswith("storekeeper:initialized") and row[1] is True
    assert setting_record(platform, APP, "example_db")["state"] == "initialized"


def test_kill_mid_restore_leaves_the_store_intact_and_the_next_import_cleans_up(
    platform, synced, pg_admin_url, admin_conn, sk_home, tmp_path
):
    _big_store(pg_admin_url)
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("DELETE FROM stream_gages WHERE value > 1000")
    count = rows(pg_admin_url, EXAMPLE_DB, "SELECT count(*) FROM stream_gages")[0][0]
    proc = _popen_import(sk_home, file)
    _wait_for(
        admin_conn,
        "SELECT 1 FROM pg_stat_activity WHERE datname LIKE %s AND query ILIKE 'COPY%%'",
        (EXAMPLE_DB + "\\_restore\\_%",),
    )
    _kill(proc)
    _old_store_intact(platform, pg_admin_url, admin_conn, count)
    assert len(_sides(admin_conn)) == 1  # the half-restored database, marked "restoring"
    out = backups.import_store(platform, APP, "example_db", file, replace=True)
    assert len(out.cleaned) == 1 and _sides(admin_conn) == []
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT count(*) FROM stream_gages") == [(300002,)]


def test_kill_mid_swap_leaves_the_old_store_ready(platform, synced, pg_admin_url, admin_conn, sk_home, tmp_path):
    """The swap's marker write is held (pg_shdescription locked) after its renames: the kill lands inside it."""
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 42)")
    proc = _popen_import(sk_home, file)
    _wait_for(admin_conn, "SELECT 1 FROM pg_database WHERE datname LIKE %s", (EXAMPLE_DB + "\\_restore\\_%",))
    with connect_to(pg_admin_url, "postgres") as holder:
        _wait_for(
            admin_conn,
            "SELECT 1 FROM pg_database WHERE datname LIKE %s AND shobj_description(oid, 'pg_database') LIKE %s",
            (EXAMPLE_DB + "\\_restore\\_%", "storekeeper:restoring%"),
        )
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE pg_shdescription IN EXCLUSIVE MODE")
        _wait_for(
            admin_conn,
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'COMMENT ON DATABASE%%'",
            (),
        )
        _kill(proc)
        holder.execute("ROLLBACK")
    time.sleep(0.5)  # the killed command's backend rolls its transaction back
    _old_store_intact(platform, pg_admin_url, admin_conn, 3)
    out = backups.import_store(platform, APP, "example_db", file, replace=True)
    assert len(out.cleaned) == 1 and _sides(admin_conn) == []
    assert _values(pg_admin_url) == [1, 2]


def test_two_imports_of_one_store_take_turns(platform, synced, pg_admin_url, admin_conn, sk_home, tmp_path):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    procs = [_popen_import(sk_home, file) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert _values(pg_admin_url) == [1, 2] and _sides(admin_conn) == []


def test_drop_and_refresh_with_backup_export_first(run_cli, synced, pg_admin_url, admin_conn, tmp_path):
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 42)")
    target = tmp_path / "safety net"
    done = run_cli("syncstores", APP, "--database", "example_db", "--refresh", "--backup", str(target), "--yes")
    assert done.returncode == 0, done.stderr
    assert _values(pg_admin_url) == [1, 2]  # refreshed
    (saved,) = target.glob("*.skbackup")
    done = run_cli("stores", "import", APP, "--database", "example_db", str(saved), "--replace", "--yes")
    assert done.returncode == 0, done.stderr
    assert _values(pg_admin_url) == [1, 2, 42]
    done = run_cli("stores", "drop", APP, "example_db", "--backup", str(target), "--yes")
    assert done.returncode == 0, done.stderr
    assert len(list(target.glob("*.skbackup"))) == 2


def test_a_backup_that_fails_stops_the_drop(run_cli, synced, pg_admin_url, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = run_cli("stores", "drop", APP, "example_db", "--backup", str(blocker), "--yes")
    assert done.returncode == 1 and "is not a directory" in done.stderr
    assert _values(pg_admin_url) == [1, 2]


@pytest.mark.parametrize("name", ['x"; DROP DATABASE postgres; --', "../../etc", "Robert'); --", "a" * 80])
def test_hostile_store_names_are_refused_before_anything_runs(run_cli, synced, tmp_path, name):
    file = tmp_path / "f.skbackup"
    _export(run_cli, file)
    for args in (
        ("stores", "export", APP, "--database", name, "-o", str(tmp_path / "x.skbackup")),
        ("stores", "import", APP, "--database", name, str(file), "--replace", "--yes"),
        ("stores", "clone", APP, "--database", "example_db", "--to", name),
        ("stores", "clone", APP, "--database", name, "--to", "fine_name"),
    ):
        done = run_cli(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Unexpected" not in done.stderr
    assert not (tmp_path / "x.skbackup").exists()


def test_on_a_terminal_export_and_import_show_progress_and_import_asks(sk_home, synced, pg_admin_url, tmp_path):
    """Run under a pseudo-terminal: Rich's progress bars show, and --replace asks before it acts."""
    import pty

    def on_terminal(*args: str, answer: bytes = b"") -> tuple[int, str]:
        master, slave = pty.openpty()
        env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "120", "TERM": "xterm"}
        proc = subprocess.Popen([storekeeper_exe(), *args], stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        if answer:
            time.sleep(3)  # let the prompt come up
            os.write(master, answer)
        output = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
        return proc.wait(timeout=120), output.decode(errors="replace")

    file = tmp_path / "f.skbackup"
    code, output = on_terminal("stores", "export", APP, "--database", "example_db", "-o", str(file))
    assert code == 0, output
    assert file.exists() and "bytes written" in output
    code, output = on_terminal(
        "stores", "import", APP, "--database", "example_db", str(file), "--replace", answer=b"n\n"
    )
    assert code != 0 and "Continue?" in output  # said no: nothing done
    code, output = on_terminal(
        "stores", "import", APP, "--database", "example_db", str(file), "--replace", answer=b"y\n"
    )
    assert code == 0, output
    assert "replaced" in output
    assert _values(pg_admin_url) == [1, 2]
