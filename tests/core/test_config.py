"""storekeeper's own configuration: home, config.yml, secret key, environment overrides."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from storekeeper.config import describe, load_config, read_file, set_values
from storekeeper.errors import ConfigError

LONG_SECRET = "k" * 48


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory that does not exist yet, with no STOREKEEPER_* variables set."""
    for var in [v for v in os.environ if v.startswith("STOREKEEPER_")]:
        monkeypatch.delenv(var)
    path = tmp_path / "skhome"
    monkeypatch.setenv("STOREKEEPER_HOME", str(path))
    return path


def test_first_load_creates_home_and_config_file_readable_by_owner_only(home: Path) -> None:
    config = load_config()
    assert config.home == home.resolve()
    mode = stat.S_IMODE((home / "config.yml").stat().st_mode)
    assert mode == 0o600
    assert not stat.S_IMODE(home.stat().st_mode) & 0o077


def test_default_platform_database_is_sqlite_file_in_home(home: Path) -> None:
    assert load_config().database_url == f"sqlite:///{home.resolve() / 'platform.sqlite3'}"


def test_secret_key_is_generated_once_and_stays_the_same(home: Path) -> None:
    first = load_config().secret_key
    second = load_config().secret_key
    assert len(first) >= 32
    assert first == second
    assert read_file(home)["secret_key"] == first


def test_each_home_gets_its_own_secret_key(tmp_path: Path, home: Path) -> None:
    assert load_config(tmp_path / "a").secret_key != load_config(tmp_path / "b").secret_key


def test_config_file_stays_owner_only_after_set(home: Path) -> None:
    load_config()
    set_values(home, {"portal.port": "8123"})
    assert stat.S_IMODE((home / "config.yml").stat().st_mode) == 0o600
    assert load_config().portal_port == 8123


def test_environment_variable_overrides_config_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_config()
    set_values(home, {"database.url": "sqlite:////tmp/from-file.sqlite3"})
    assert load_config().database_url == "sqlite:////tmp/from-file.sqlite3"
    monkeypatch.setenv("STOREKEEPER_DATABASE_URL", "postgresql+psycopg://u@db.example:5432/platform")
    assert load_config().database_url == "postgresql+psycopg://u@db.example:5432/platform"


def test_environment_variable_for_multiword_key_is_typed(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_ENGINES_REVALIDATE_SECONDS", "0.25")
    assert load_config().engines_revalidate_seconds == 0.25


def test_values_passed_in_code_win_over_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_PORTAL_PORT", "9000")
    assert load_config(portal_port=9100).portal_port == 9100


def test_invalid_environment_value_names_the_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_PORTAL_PORT", "eighty")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.key == "portal.port"
    assert "STOREKEEPER_PORTAL_PORT" in info.value.hint


@pytest.mark.parametrize("placeholder", ["changeme", "secret", "short-but-not-a-placeholder"])
def test_placeholder_or_short_secret_key_in_environment_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    monkeypatch.setenv("STOREKEEPER_SECRET_KEY", placeholder)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "STOREKEEPER_SECRET_KEY" in str(info.value)
    assert info.value.hint


def test_placeholder_secret_key_in_config_file_is_refused(home: Path) -> None:
    home.mkdir()
    (home / "config.yml").write_text(yaml.safe_dump({"secret_key": "changeme"}))
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "STOREKEEPER_SECRET_KEY" in str(info.value)
    assert "config.yml" in str(info.value)


def test_long_secret_key_from_environment_is_used_and_not_written(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir()
    (home / "config.yml").write_text(yaml.safe_dump({"portal": {"port": 8005}}))
    monkeypatch.setenv("STOREKEEPER_SECRET_KEY", LONG_SECRET)
    config = load_config()
    assert config.secret_key == LONG_SECRET
    assert config.portal_port == 8005
    assert "secret_key" not in read_file(home)


def test_setting_a_placeholder_secret_key_changes_nothing(home: Path) -> None:
    load_config()
    before = (home / "config.yml").read_bytes()
    with pytest.raises(ConfigError) as info:
        set_values(home, {"secret_key": "changeme"})
    assert "STOREKEEPER_SECRET_KEY" in str(info.value)
    assert (home / "config.yml").read_bytes() == before


def test_unknown_key_is_refused_with_the_listing_command(home: Path) -> None:
    load_config()
    with pytest.raises(ConfigError) as info:
        set_values(home, {"database.uri": "sqlite://"})
    assert "database.uri" in str(info.value)
    assert "database.url" in str(info.value)  # the known keys are listed
    assert "storekeeper settings" in info.value.hint


def test_unset_of_unknown_key_is_refused(home: Path) -> None:
    load_config()
    with pytest.raises(ConfigError):
        set_values(home, {}, unset=["no.such"])


def test_bad_value_changes_nothing_in_config_file(home: Path) -> None:
    load_config()
    set_values(home, {"portal.port": 8001})
    before = (home / "config.yml").read_bytes()
    with pytest.raises(ConfigError) as info:
        set_values(home, {"portal.host": "0.0.0.0", "portal.port": "not-a-port"})
    assert info.value.key == "portal.port"
    assert (home / "config.yml").read_bytes() == before


def test_set_stores_typed_values_and_unset_restores_default(home: Path) -> None:
    load_config()
    set_values(home, {"portal.port": "8001"})
    assert read_file(home)["portal.port"] == 8001
    set_values(home, {}, unset=["portal.port"])
    assert "portal.port" not in read_file(home)
    assert load_config().portal_port == 8000


def test_unset_keeps_the_secret_key(home: Path) -> None:
    secret = load_config().secret_key
    set_values(home, {"portal.host": "0.0.0.0"}, unset=["portal.port"])
    assert load_config().secret_key == secret


def test_describe_masks_the_secret_key_and_names_sources(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_values(home, {"portal.port": 8002})
    monkeypatch.setenv("STOREKEEPER_PORTAL_HOST", "0.0.0.0")
    config = load_config()
    listing = describe(config)
    assert config.secret_key not in repr(listing)
    by_key = {row["key"]: row for row in listing}
    assert by_key["secret_key"]["value"] == "********"
    assert by_key["portal.port"]["source"] == "file"
    assert by_key["portal.host"]["source"] == "env STOREKEEPER_PORTAL_HOST"
    assert by_key["database.url"]["env"] == "STOREKEEPER_DATABASE_URL"
    assert all(row["help"] for row in listing)


def test_unreadable_yaml_names_the_file(home: Path) -> None:
    home.mkdir()
    (home / "config.yml").write_text("secret_key: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "config.yml" in str(info.value)


def test_processes_creating_a_fresh_home_at_once_agree_on_one_secret_key(tmp_path):
    """Several processes loading a new home together must not each keep their own key."""
    import subprocess
    import sys
    import time

    home = tmp_path / "racehome"
    start_at = time.time() + 2.0  # every process imports first, then all start together
    code = (
        "import time\nfrom storekeeper.config import load_config\n"
        f"time.sleep(max(0.0, {start_at!r} - time.time()))\n"
        f"print(load_config({str(home)!r}).secret_key)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(8)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1
    from storekeeper.config import load_config

    assert load_config(home).secret_key in keys
    assert not list(home.glob("*.tmp"))
