"""``storekeeper settings``: storekeeper's own config (config.yml, STOREKEEPER_* variables)."""

from __future__ import annotations

import json
import stat

import yaml

from tests.cli.helpers import as_json, fails, ok, process_ok


def _file(home):
    return yaml.safe_load((home / "config.yml").read_text())


def _real_secret_key(home):
    key = _file(home)["secret_key"]
    assert len(key) >= 32
    return key


def test_listing_shows_every_key_with_the_secret_key_masked(invoke, sk_home):
    out = ok(invoke("settings")).stdout
    secret = _real_secret_key(sk_home)
    assert secret not in out
    for key in ("database.url", "secret_key", "portal.host", "portal.port"):
        assert key in out
    assert "********" in out


def test_json_listing_masks_the_secret_key(invoke, sk_home):
    rows = as_json(invoke("settings --json"))
    by_key = {r["key"]: r for r in rows}
    assert by_key["secret_key"]["value"] == "********"
    assert _real_secret_key(sk_home) not in json.dumps(rows)
    port = by_key["portal.port"]
    assert (port["value"], port["source"], port["env"]) == (8000, "default", "STOREKEEPER_PORTAL_PORT")
    assert port["help"]


def test_get_secret_key_does_not_reveal_it(invoke, sk_home):
    result = ok(invoke("settings --get secret_key"))
    assert _real_secret_key(sk_home) not in result.output


def test_set_takes_two_key_value_pairs_in_one_command(invoke, sk_home, tmp_path):
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    ok(invoke(["settings", "--set", "database.url", url, "--set", "portal.port", "8001"]))
    data = _file(sk_home)
    assert data["database"]["url"] == url
    assert data["portal"]["port"] == 8001
    assert ok(invoke("settings --get portal.port")).stdout.strip() == "8001"
    assert ok(invoke("settings --get database.url")).stdout.strip() == url


def test_set_accepts_key_equals_value(invoke, sk_home):
    ok(invoke(["settings", "--set", "portal.host=0.0.0.0"]))
    assert _file(sk_home)["portal"]["host"] == "0.0.0.0"


def test_get_json_returns_the_requested_keys(invoke):
    assert as_json(invoke("settings --get portal.port --get portal.host --json")) == {
        "portal.port": 8000,
        "portal.host": "127.0.0.1",
    }


def test_unset_returns_a_key_to_its_default(invoke, sk_home):
    ok(invoke("settings --set portal.port 8001"))
    ok(invoke("settings --unset portal.port"))
    assert "port" not in _file(sk_home).get("portal", {})
    rows = {r["key"]: r for r in as_json(invoke("settings --json"))}
    assert rows["portal.port"]["value"] == 8000
    assert rows["portal.port"]["source"] == "default"


def test_unknown_key_is_an_error_naming_the_known_keys(invoke, sk_home):
    before = (sk_home / "config.yml").read_text()
    fails(invoke("settings --set portal.prot 8001"), "portal.prot", "portal.port", "storekeeper settings")
    assert (sk_home / "config.yml").read_text() == before
    fails(invoke("settings --get no.such.key"), "no.such.key")
    fails(invoke("settings --unset no.such.key"), "no.such.key")


def test_bad_value_changes_nothing(invoke, sk_home):
    ok(invoke("settings --set portal.host example.org"))
    before = (sk_home / "config.yml").read_text()
    fails(invoke("settings --set portal.host other.org --set portal.port abc"), "portal.port")
    assert (sk_home / "config.yml").read_text() == before


def test_placeholder_secret_key_is_refused(invoke, sk_home):
    before = (sk_home / "config.yml").read_text()
    fails(invoke("settings --set secret_key changeme"), "secret")
    assert (sk_home / "config.yml").read_text() == before


def test_environment_variable_overrides_the_file_and_is_shown_as_the_source(invoke):
    ok(invoke("settings --set portal.port 8001"))
    rows = {r["key"]: r for r in as_json(invoke("settings --json", env={"STOREKEEPER_PORTAL_PORT": "9000"}))}
    assert rows["portal.port"]["value"] == 9000
    assert rows["portal.port"]["source"] == "env STOREKEEPER_PORTAL_PORT"
    assert rows["portal.host"]["source"] == "default"
    out = ok(invoke("settings", env={"STOREKEEPER_PORTAL_PORT": "9000"})).stdout
    assert "STOREKEEPER_PORTAL_PORT" in out


def test_setting_a_key_overridden_by_the_environment_warns(invoke):
    result = ok(invoke("settings --set portal.port 8001", env={"STOREKEEPER_PORTAL_PORT": "9000"}))
    assert "STOREKEEPER_PORTAL_PORT" in result.stderr


def test_config_file_is_readable_by_its_owner_only(invoke_fresh, fresh_home):
    ok(invoke_fresh("settings"))
    assert stat.S_IMODE((fresh_home / "config.yml").stat().st_mode) == 0o600
    ok(invoke_fresh("settings --set portal.port 8001"))
    assert stat.S_IMODE((fresh_home / "config.yml").stat().st_mode) == 0o600


def test_database_url_password_is_masked_in_the_listing(invoke):
    url = "postgresql+psycopg://sk:Hunter2-very-secret@db.example.org:5432/storekeeper"
    ok(invoke(["settings", "--set", "database.url", url]))
    for args in (["settings"], ["settings", "--json"], ["settings", "--get", "database.url"]):
        out = ok(invoke(args)).output
        assert "Hunter2-very-secret" not in out
        assert "db.example.org" in out


def test_real_process_json_listing_is_parseable_and_hides_the_key(run_cli, sk_home):
    proc = process_ok(run_cli("settings", "--json"))
    rows = json.loads(proc.stdout)
    assert {r["key"] for r in rows} >= {"database.url", "secret_key", "portal.host", "portal.port"}
    assert _real_secret_key(sk_home) not in proc.stdout + proc.stderr


def test_home_option_chooses_the_home(invoke, tmp_path):
    other = tmp_path / "other-home"
    ok(invoke(["--home", str(other), "settings", "--set", "portal.port", "8002"]))
    assert _file(other)["portal"]["port"] == 8002
