"""``storekeeper settings rotate-secret-key``: a new secret key, every secret re-encrypted, crash-safe.

The rotation runs as a real process; the crash tests kill it with SIGKILL at each
step (``STOREKEEPER_TEST_CRASH_AT``, test-only) and show that every secret is
still readable, by the commands too, and that the next run finishes the job.
"""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from storekeeper.config import ENCRYPTED_KEYS, SECRET_KEYS, fernet_key, load_config, new_secret_key, set_values
from storekeeper.platform import ENCRYPTED_COLUMNS, open_platform
from storekeeper.platform.models import Base, Service
from storekeeper.secret_key import CRASH_ENV, CRASH_POINTS
from tests.cli.helpers import process_fails, process_ok

LOCAL_PASSWORD = "local-server-password-for-the-test"


def _file(home: Path) -> dict:
    return yaml.safe_load((home / "config.yml").read_text())


def _fernet(key: str) -> Fernet:
    return Fernet(fernet_key(key))


def _tokens(home: Path) -> dict[str, str]:
    """Every encrypted value of the platform database, by ``table.column:row id``."""
    platform = open_platform(load_config(home))
    try:
        with platform.session() as session:
            found = {}
            for column in ENCRYPTED_COLUMNS:
                model = column.class_
                for row in session.scalars(select(model).where(column.is_not(None))):
                    found[f"{model.__tablename__}.{column.key}:{row.id}"] = getattr(row, column.key)
            return found
    finally:
        platform.close()


def _decrypts(key: str, token: str) -> bool:
    try:
        _fernet(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


@pytest.fixture
def secrets_home(sk_home: Path, service: str) -> Path:
    """A home with a service (its password encrypted) and a local server password in config.yml."""
    key = _file(sk_home)["secret_key"]
    set_values(sk_home, {"local.password": _fernet(key).encrypt(LOCAL_PASSWORD.encode()).decode()})
    assert _tokens(sk_home)  # the service's password
    return sk_home


def _rotate(run_cli, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = process_ok(run_cli("settings", "rotate-secret-key", "--yes", "--json", *args, env=env))
    return json.loads(proc.stdout)


def _assert_all_encrypted_with(home: Path, key: str, *, not_with: str) -> None:
    tokens = _tokens(home)
    local = _file(home)["local"]["password"]
    for where, token in [*tokens.items(), ("local.password", local)]:
        assert _decrypts(key, token), where
        assert not _decrypts(not_with, token), f"{where} still decrypts with the old key"
    assert _fernet(key).decrypt(local.encode()).decode() == LOCAL_PASSWORD


def test_rotation_reencrypts_every_secret_and_the_service_still_connects(run_cli, secrets_home):
    old_key = _file(secrets_home)["secret_key"]
    before = _tokens(secrets_home)
    local_before = _file(secrets_home)["local"]["password"]

    proc = process_ok(run_cli("settings", "rotate-secret-key", "--yes", "--json"))
    result = json.loads(proc.stdout)
    assert result["ok"] is True
    assert result["resumed"] is False
    assert _nonzero(result["reencrypted"]) == {"services.password_encrypted": 1, "local.password": 1}
    assert result["total"] == 2

    data = _file(secrets_home)
    new_key = data["secret_key"]
    assert new_key != old_key
    assert "secret_key_previous" not in data
    assert stat.S_IMODE((secrets_home / "config.yml").stat().st_mode) == 0o600
    after = _tokens(secrets_home)
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before)  # the stored ciphertext changed
    assert data["local"]["password"] != local_before
    _assert_all_encrypted_with(secrets_home, new_key, not_with=old_key)
    for secret in (old_key, new_key, LOCAL_PASSWORD):
        assert secret not in proc.stdout + proc.stderr

    tested = json.loads(process_ok(run_cli("services", "test", "local", "--json")).stdout)
    assert tested["server_version"]

    events = json.loads(process_ok(run_cli("audit", "--json")).stdout)
    rotations = [e for e in events if e["action"] == "settings.rotate_secret_key"]
    assert len(rotations) == 1 and rotations[0]["outcome"] == "ok"
    assert "re-encrypted 2 secret(s)" in rotations[0]["detail"]
    assert old_key not in json.dumps(events) and new_key not in json.dumps(events)


def test_plain_output_says_what_was_done_and_hides_the_keys(run_cli, secrets_home):
    old_key = _file(secrets_home)["secret_key"]
    proc = process_ok(run_cli("settings", "rotate-secret-key", "-y"))
    assert "re-encrypted 2 secret(s)" in proc.stdout
    assert "Restart a running portal" in proc.stderr + proc.stdout
    for secret in (old_key, _file(secrets_home)["secret_key"], LOCAL_PASSWORD):
        assert secret not in proc.stdout + proc.stderr


def test_without_yes_and_without_a_terminal_it_refuses_and_changes_nothing(run_cli, secrets_home):
    before, tokens = (secrets_home / "config.yml").read_bytes(), _tokens(secrets_home)
    process_fails(run_cli("settings", "rotate-secret-key"), "--yes")
    assert (secrets_home / "config.yml").read_bytes() == before
    assert _tokens(secrets_home) == tokens


def test_a_key_from_the_environment_is_refused_and_nothing_changes(run_cli, secrets_home):
    key = _file(secrets_home)["secret_key"]
    before, tokens = (secrets_home / "config.yml").read_bytes(), _tokens(secrets_home)
    proc = run_cli("settings", "rotate-secret-key", "--yes", env={"STOREKEEPER_SECRET_KEY": key})
    err = process_fails(proc, "STOREKEEPER_SECRET_KEY", "STOREKEEPER_SECRET_KEY_PREVIOUS", "Nothing was changed")
    assert key not in err + proc.stdout
    assert (secrets_home / "config.yml").read_bytes() == before
    assert _tokens(secrets_home) == tokens


def test_a_key_in_the_environment_is_rotated_with_the_previous_one_beside_it(run_cli, secrets_home):
    """The documented way for a key kept in the environment: new key there, old one as _PREVIOUS."""
    old_key, new_key = _file(secrets_home)["secret_key"], new_secret_key()
    env = {"STOREKEEPER_SECRET_KEY": new_key, "STOREKEEPER_SECRET_KEY_PREVIOUS": old_key}
    proc = process_ok(run_cli("settings", "rotate-secret-key", "--yes", "--json", env=env))
    result = json.loads(proc.stdout)
    assert result["resumed"] is True
    assert result["previous_in_env"] is True
    assert "unset STOREKEEPER_SECRET_KEY_PREVIOUS" in proc.stderr
    assert _file(secrets_home)["secret_key"] == old_key  # the file's key is not the one in use: left alone
    _assert_all_encrypted_with(secrets_home, new_key, not_with=old_key)
    process_ok(run_cli("services", "test", "local", env={"STOREKEEPER_SECRET_KEY": new_key}))


def test_a_secret_no_key_decrypts_is_refused_before_anything_changes(run_cli, secrets_home):
    platform = open_platform(load_config(secrets_home))
    with platform.session() as session:
        svc = session.scalars(select(Service)).one()
        svc.password_encrypted = _fernet(new_secret_key()).encrypt(b"from another home").decode()
    platform.close()
    before, tokens = (secrets_home / "config.yml").read_bytes(), _tokens(secrets_home)
    process_fails(
        run_cli("settings", "rotate-secret-key", "--yes"),
        'Service "local"',
        "storekeeper settings --set secret_key_previous",
    )
    assert (secrets_home / "config.yml").read_bytes() == before
    assert _tokens(secrets_home) == tokens


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_step_loses_nothing_and_the_next_run_finishes(run_cli, secrets_home, point):
    old_key = _file(secrets_home)["secret_key"]
    crashed = run_cli("settings", "rotate-secret-key", "--yes", env={CRASH_ENV: point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    # Mid-rotation: the new key is in place, the old one kept beside it, and every secret is readable.
    data = _file(secrets_home)
    new_key = data["secret_key"]
    assert new_key != old_key
    assert data["secret_key_previous"] == old_key
    assert stat.S_IMODE((secrets_home / "config.yml").stat().st_mode) == 0o600
    config = load_config(secrets_home)
    for token in [*_tokens(secrets_home).values(), data["local"]["password"]]:
        config.fernet().decrypt(token.encode())
    assert config.fernet().decrypt(data["local"]["password"].encode()).decode() == LOCAL_PASSWORD
    database_done = point == "after-database"
    assert all(_decrypts(new_key, t) == database_done for t in _tokens(secrets_home).values())
    process_ok(run_cli("services", "test", "local"))  # the commands read either key meanwhile

    # Running it again finishes the job with the key the crashed run made: no third key.
    result = _rotate(run_cli)
    assert result["resumed"] is True
    assert _nonzero(result["reencrypted"]) == {"services.password_encrypted": 1, "local.password": 1}
    data = _file(secrets_home)
    assert data["secret_key"] == new_key
    assert "secret_key_previous" not in data
    _assert_all_encrypted_with(secrets_home, new_key, not_with=old_key)
    process_ok(run_cli("services", "test", "local"))
    assert not list(secrets_home.glob("*.tmp"))


def test_rotating_twice_makes_two_new_keys(run_cli, secrets_home):
    first = _file(secrets_home)["secret_key"]
    _rotate(run_cli)
    second = _file(secrets_home)["secret_key"]
    assert _rotate(run_cli)["resumed"] is False
    third = _file(secrets_home)["secret_key"]
    assert len({first, second, third}) == 3
    _assert_all_encrypted_with(secrets_home, third, not_with=second)


def test_every_column_that_looks_like_a_secret_is_listed_for_rotation():
    """A new encrypted column must be added to ENCRYPTED_COLUMNS, or rotation would leave it behind."""
    listed = {f"{c.class_.__tablename__}.{c.key}" for c in ENCRYPTED_COLUMNS}
    # Plain SHA-256 or password hashes, made without the secret key: nothing to re-encrypt.
    hashes = {"users.password_hash", "api_tokens.token_hash", "sign_in_throttle.key"}
    looks_secret = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if any(word in column.name for word in ("password", "secret", "encrypted", "token", "key"))
        and not column.name.endswith("_id")
    }
    assert looks_secret - hashes - listed == set()
    assert listed <= looks_secret
    # The config file's encrypted keys are listed too (the keys themselves are not encrypted).
    assert set(ENCRYPTED_KEYS) == SECRET_KEYS - {"secret_key", "secret_key_previous"}


def test_the_bare_settings_forms_still_work_in_a_real_process(run_cli, sk_home):
    process_ok(run_cli("settings", "--set", "portal.port", "8003", "--set", "portal.host=0.0.0.0"))
    got = json.loads(process_ok(run_cli("settings", "--get", "portal.port", "--get", "portal.host", "--json")).stdout)
    assert got == {"portal.port": 8003, "portal.host": "0.0.0.0"}
    assert "portal.port" in process_ok(run_cli("settings")).stdout
    process_ok(run_cli("settings", "--unset", "portal.port"))
    assert "port" not in _file(sk_home)["portal"]
    process_fails(run_cli("settings", "--get", "portal.port", "rotate-secret-key"), "rotate-secret-key")


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    """The columns that held a secret in this home (every encrypted column is reported, most with 0)."""
    return {column: n for column, n in counts.items() if n}
