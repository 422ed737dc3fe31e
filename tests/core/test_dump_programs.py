"""Finding pg_dump and pg_restore: the server's major version or newer, with the fix named when missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from storekeeper.errors import ConfigError
from storekeeper.stores import dumps


def _fake(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    program.chmod(0o755)
    return program


@pytest.fixture(autouse=True)
def _no_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dumps, "embedded_bindir", lambda: None)


def test_the_servers_own_major_version_is_preferred_over_a_newer_one(tmp_path):
    root = tmp_path / "postgresql"
    _fake(root / "16" / "bin", "pg_dump", "16.4")
    wanted = _fake(root / "15" / "bin", "pg_dump", "15.18")
    assert dumps.find_program("pg_dump", 15, path=str(tmp_path / "empty"), search_root=root) == (wanted, "15.18")


def test_a_newer_one_serves_an_older_server(tmp_path):
    root = tmp_path / "postgresql"
    newer = _fake(root / "17" / "bin", "pg_restore", "17.2")
    _fake(root / "13" / "bin", "pg_restore", "13.9")
    assert dumps.find_program("pg_restore", 15, path=str(tmp_path / "empty"), search_root=root) == (newer, "17.2")


def test_only_older_programs_is_an_error_naming_the_package(tmp_path):
    on_path = _fake(tmp_path / "bin", "pg_dump", "13.9")
    with pytest.raises(ConfigError, match="pg_dump of PostgreSQL 16 or newer") as err:
        dumps.find_program("pg_dump", 16, path=str(on_path.parent), search_root=tmp_path / "none")
    assert "apt-get install postgresql-client-16" in (err.value.hint or "")
    assert str(on_path) in err.value.message


def test_a_wrapper_on_path_comes_after_the_real_programs(tmp_path):
    root = tmp_path / "postgresql"
    real = _fake(root / "15" / "bin", "pg_dump", "15.18")
    wrapper = _fake(tmp_path / "share", "pg_wrapper", "15.18")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pg_dump").symlink_to(wrapper)
    assert dumps.find_program("pg_dump", 15, path=str(tmp_path / "bin"), search_root=root)[0] == real


def test_the_passfile_holds_the_password_escaped_and_is_private_and_removed():
    with dumps.passfile("db.example", 5432, "us:er", "p:a\\ss") as env:
        path = Path(env["PGPASSFILE"])
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text() == "db.example:5432:*:us\\:er:p\\:a\\\\ss\n"
        assert "PGPASSWORD" not in env
    assert not path.exists()
