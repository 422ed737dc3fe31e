"""``storekeeper doctor``: one finding per problem, with the command that fixes it; exit 1 on an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storekeeper import stores
from storekeeper.stores import migrations
from tests.cli.helpers import as_json, ok
from tests.core.conftest import drop_behind_back, migrating_app  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("migrating_app")


def _by_subject(doc):
    return {(f["subject"], f["level"]): f for f in doc["findings"]}


def test_a_healthy_home_has_no_error(invoke, platform, sk_home: Path) -> None:
    assert stores.sync_stores(platform, ["migrating_app"], database="db")[0].ok
    doc = as_json(invoke("doctor --json"))
    assert doc["ok"] is True, doc
    assert set(doc) == {"ok", "findings"}
    for f in doc["findings"]:
        assert set(f) == {"level", "subject", "message", "fix"} and f["level"] in ("error", "warning", "info")
    local = _by_subject(doc)[("local", "info")]
    assert "reachable" in local["message"] and "PostgreSQL" in local["message"]
    assert ("migrating_app/autogen_db", "info") in _by_subject(doc)  # not made yet
    out = ok(invoke("doctor")).stdout
    assert "No problems found." in out


def test_each_problem_is_found_with_its_fix(invoke, platform, sk_home: Path, admin_conn) -> None:
    assert stores.sync_stores(platform, ["migrating_app"], database="db")[0].ok
    assert stores.sync_stores(platform, ["migrating_app"], database="autogen_db")[0].ok
    migrations.migrate(platform, "migrating_app", "db", to="0002")  # one migration pending
    drop_behind_back(admin_conn, "migrating_app_autogen_db")  # recorded as made, gone from its server
    (sk_home / "config.yml").chmod(0o644)  # the secret key readable by others
    result = invoke("doctor --json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    found = _by_subject(doc)
    missing = found[("migrating_app/autogen_db", "error")]
    assert "missing on its server" in missing["message"]
    assert missing["fix"] == "storekeeper syncstores migrating_app"
    pending = found[("migrating_app/db", "warning")]
    assert "1 migration(s) pending (0003)" in pending["message"]
    assert pending["fix"] == "storekeeper syncstores migrating_app --database db"
    home = found[("home", "error")]
    assert "secret key" in home["message"] and home["fix"] == f"chmod 600 {sk_home / 'config.yml'}"
    assert [f["level"] for f in doc["findings"]][:2] == ["error", "error"]  # errors first
    text = invoke("doctor")
    assert text.exit_code == 1 and "Traceback" not in text.output
    assert "migrating_app/autogen_db: recorded as made" in text.stdout and "2 error(s)." in text.stdout


def test_a_service_user_that_cannot_create_roles_or_databases_is_reported(invoke, platform, pg_admin_url) -> None:
    from tests.core.conftest import connect_to, drop_service_user, make_service_user

    make_service_user(platform, pg_admin_url, "limited", "doctor_limited", "limited-password-1", "LOGIN")
    try:
        doc = json.loads(invoke("doctor --json").stdout)
        found = _by_subject(doc)
        assert "may not create databases" in found[("limited", "error")]["message"]
        assert found[("limited", "error")]["fix"] == "ALTER ROLE doctor_limited CREATEDB"
        assert "not isolated" in found[("limited", "warning")]["message"]
        assert doc["ok"] is False
    finally:
        with connect_to(pg_admin_url, "postgres") as conn:
            drop_service_user(conn, "doctor_limited")


def test_an_unreachable_service_a_refused_store_and_an_open_home_are_reported(
    invoke, platform, sk_home: Path, pg_admin_url: str
) -> None:
    from storekeeper import services
    from tests.cli.helpers import closed_port
    from tests.core.conftest import rows

    port = closed_port()
    services.create_service(
        platform, name="down", host="127.0.0.1", port=port, username="someone", password="pw", connect_timeout=2
    )
    assert stores.sync_stores(platform, ["migrating_app"], database="db")[0].ok
    rows(pg_admin_url, "migrating_app_db", "UPDATE alembic_version SET version_num = 'ffff9999' RETURNING 1")
    sk_home.chmod(0o755)
    doc = json.loads(invoke("doctor --json").stdout)
    found = _by_subject(doc)
    assert found[("down", "error")]["fix"] is not None and str(port) in found[("down", "error")]["message"]
    unknown = found[("migrating_app/db", "error")]
    assert "is at revision ffff9999" in unknown["message"] and "--stamp REV" in unknown["fix"]
    assert found[("home", "warning")]["fix"] == f"chmod 700 {sk_home}"
    assert doc["ok"] is False
