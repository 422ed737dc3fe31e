"""The secret key rotation as the core does it, and processes that keep running through one."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from storekeeper.config import fernet_key, load_config, read_file, set_values
from storekeeper.errors import ConfigError
from storekeeper.platform import Platform
from storekeeper.platform.models import Service
from storekeeper.secret_key import rotate_secret_key


def _stored_password(platform: Platform) -> str:
    with platform.session() as session:
        token = session.scalars(select(Service.password_encrypted)).one()
    assert token is not None
    return token


def test_a_running_platform_follows_a_rotation_made_elsewhere(platform, service, sk_home):
    """The portal keeps its platform open: after a rotation it reads and writes with the new key."""
    password = platform.decrypt(_stored_password(platform), service=service)
    old = Fernet(fernet_key(read_file(sk_home)["secret_key"]))

    result = rotate_secret_key(sk_home)
    assert not result.resumed
    new = Fernet(fernet_key(read_file(sk_home)["secret_key"]))

    assert platform.decrypt(_stored_password(platform), service=service) == password
    token = platform.encrypt("written after the rotation")
    assert new.decrypt(token.encode()) == b"written after the rotation"
    with pytest.raises(InvalidToken):
        old.decrypt(token.encode())


def test_decryption_accepts_the_previous_key_while_one_is_set(sk_home):
    old_key = load_config(sk_home).secret_key
    token = Fernet(fernet_key(old_key)).encrypt(b"secret").decode()
    set_values(sk_home, {"secret_key": "another-long-secret-key-of-at-least-32-chars"})
    with pytest.raises(InvalidToken):
        load_config(sk_home).fernet().decrypt(token.encode())
    set_values(sk_home, {"secret_key_previous": old_key})
    config = load_config(sk_home)
    assert config.fernet().decrypt(token.encode()) == b"secret"
    assert old_key not in repr(config)


def test_an_environment_key_without_a_previous_one_is_refused(sk_home, monkeypatch):
    before = (sk_home / "config.yml").read_bytes()
    monkeypatch.setenv("STOREKEEPER_SECRET_KEY", load_config(sk_home).secret_key)
    with pytest.raises(ConfigError) as info:
        rotate_secret_key(sk_home)
    assert "STOREKEEPER_SECRET_KEY_PREVIOUS" in (info.value.hint or "")
    assert (sk_home / "config.yml").read_bytes() == before


def test_an_encrypted_value_from_the_environment_is_refused(sk_home, monkeypatch):
    """The rotation cannot rewrite an environment variable, and the old key would be forgotten."""
    token = load_config(sk_home).fernet().encrypt(b"pw").decode()
    before = (sk_home / "config.yml").read_bytes()
    monkeypatch.setenv("STOREKEEPER_LOCAL_PASSWORD", token)
    with pytest.raises(ConfigError) as info:
        rotate_secret_key(sk_home)
    assert "STOREKEEPER_LOCAL_PASSWORD" in info.value.message
    assert (sk_home / "config.yml").read_bytes() == before


def test_store_role_passwords_are_reencrypted_and_stores_stay_reachable(platform, my_first_app, sk_home):
    from sqlalchemy import text

    from storekeeper import engines, stores
    from storekeeper.platform.models import Setting

    assert stores.sync_stores(platform, ["my_first_app"], database="example_db")[0].ok
    with platform.session() as session:
        before = session.scalars(select(Setting.role_password).where(Setting.name == "example_db")).one()
    result = rotate_secret_key(sk_home)
    assert result.reencrypted["settings.role_password"] == 1
    with platform.session() as session:
        after = session.scalars(select(Setting.role_password).where(Setting.name == "example_db")).one()
    assert after != before
    engines.clear()  # a new process: reads the role's password with the new key
    with my_first_app.get_persistent_store_database("example_db").connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "my_first_app_example_db"
