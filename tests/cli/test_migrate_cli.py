"""``storekeeper stores migrate | current | history | revision`` and ``syncstores`` of stores with migrations."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from storekeeper import audit
from tests.cli.helpers import as_json, ok, process_fails, process_ok
from tests.conftest import storekeeper_exe
from tests.core.conftest import migrating_app, rows  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("migrating_app")

APP = "migrating_app"
DB = "migrating_app_db"
AUTOGEN_VERSIONS = Path(__file__).parents[1] / "apps" / "sample_apps" / "migrations" / "autogen_db" / "versions"


def _version(url: str, db: str = DB) -> list[str]:
    return [r[0] for r in rows(url, db, "SELECT version_num FROM alembic_version")]


def test_current_shows_revision_head_and_pending_as_json(invoke) -> None:
    before = {s["store"]: s for s in as_json(invoke(f"stores current {APP} --json"))}
    assert set(before) == {"db", "autogen_db"}
    db = before["db"]
    assert {k: db[k] for k in ("app", "database", "migrations", "current", "head", "exists", "pending_count")} == {
        "app": APP,
        "database": DB,
        "migrations": "sample_apps:migrations/migrating_db",
        "current": None,
        "head": "0003",
        "exists": False,
        "pending_count": 3,
    }
    assert db["pending"][0] == {
        "revision": "0001",
        "down_revision": None,
        "message": "create gages",
        "line": "<base> -> 0001, create gages",
    }
    ok(invoke(f"syncstores {APP} --database db"))
    ok(invoke(f"stores migrate {APP} --database db --to 0002"))
    after = {s["store"]: s for s in as_json(invoke(f"stores current {APP} --json"))}
    assert (after["db"]["current"], after["db"]["pending_count"], after["db"]["problem"]) == ("0002", 1, None)
    text = ok(invoke(f"stores current {APP}")).stdout
    assert "0002" in text and "0003" in text and "not made" in text  # autogen_db is not made yet


def test_history_lists_revisions_as_alembic_does(invoke) -> None:
    ok(invoke(f"syncstores {APP} --database db"))
    ok(invoke(f"stores migrate {APP} --database db --to 0002"))
    doc = as_json(invoke(f"stores history {APP} --database db --json"))
    assert (doc["app"], doc["store"], doc["current"], doc["head"]) == (APP, "db", "0002", "0003")
    assert [(r["revision"], r["down_revision"], r["message"], r["current"]) for r in doc["revisions"]] == [
        ("0003", "0002", "create readings", False),
        ("0002", "0001", "add gage name", True),
        ("0001", None, "create gages", False),
    ]
    text = ok(invoke(f"stores history {APP} --database db")).stdout.splitlines()
    assert text == [
        "0002 -> 0003 (head), create readings",
        "0001 -> 0002, add gage name (current)",
        "<base> -> 0001, create gages",
    ]


def test_migrate_down_up_stamp_and_sql(invoke, pg_admin_url: str) -> None:
    ok(invoke(f"syncstores {APP} --database db"))
    down = as_json(invoke(f"stores migrate {APP} --database db --to 0001 --json"))
    assert down["ok"] is True
    assert {k: down["results"][0][k] for k in ("store", "action", "before", "after", "revisions", "sql")} == {
        "store": "db",
        "action": "downgrade",
        "before": "0003",
        "after": "0001",
        "revisions": ["0003", "0002"],
        "sql": None,
    }
    sql = ok(invoke(f"stores migrate {APP} --database db --sql")).stdout
    assert "ALTER TABLE gages ADD COLUMN name TEXT;" in sql and "UPDATE alembic_version" in sql
    assert _version(pg_admin_url) == ["0001"]
    up = ok(invoke(f"stores migrate {APP}")).stdout
    assert "migrating_app/db: upgrade 0001 -> 0003 (0002, 0003)" in up
    assert "migrating_app/autogen_db: not made yet" in up
    assert "up to date at 0003" in ok(invoke(f"stores migrate {APP} --database db")).stdout
    stamped = as_json(invoke(f"stores migrate {APP} --database db --stamp 0002 --json"))["results"][0]
    assert (stamped["action"], stamped["after"]) == ("stamp", "0002")
    assert _version(pg_admin_url) == ["0002"]


def test_syncstores_dry_run_lists_pending_revisions(invoke, pg_admin_url: str) -> None:
    ok(invoke(f"syncstores {APP} --database db"))
    ok(invoke(f"stores migrate {APP} --database db --to 0001"))
    doc = as_json(invoke(f"syncstores {APP} --database db --dry-run --json"))
    assert doc["results"][0]["revisions"] == ["0002", "0003"]
    text = ok(invoke(f"syncstores {APP} --database db --dry-run")).stdout
    assert "would migrate to 0003 (2 pending: 0002, 0003)" in text
    assert _version(pg_admin_url) == ["0001"]


def test_a_failed_migration_exits_1_naming_app_store_revision_and_error_without_traceback(
    invoke, run_cli, pg_admin_url: str, tmp_path: Path, platform
) -> None:
    ok(invoke(f"syncstores {APP} --database db"))
    ok(invoke(f"stores migrate {APP} --database db --to 0002"))
    flag = tmp_path / "fail"
    flag.touch()
    proc = run_cli("stores", "migrate", APP, "--database", "db", env={"MIGRATING_APP_FAIL": str(flag)})
    err = process_fails(proc, "Migration 0003", 'store "db" of app "migrating_app"', "no_such_column", "0002")
    assert "Fix: fix revision 0003 in sample_apps:migrations/migrating_db" in err
    assert _version(pg_admin_url) == ["0002"]
    failed = [e for e in audit.list_events(platform, limit=5) if e.action == "store.migrate"]
    assert failed and failed[0].outcome == "error" and "0003" in failed[0].detail
    # syncstores fails the same way, exit 1, and the next run (fixed) resumes from 0002.
    proc = run_cli("syncstores", APP, "--database", "db", env={"MIGRATING_APP_FAIL": str(flag)})
    assert proc.returncode == 1 and "Migration 0003" in proc.stderr and "Traceback" not in proc.stderr
    flag.unlink()
    process_ok(run_cli("syncstores", APP, "--database", "db"))
    assert _version(pg_admin_url) == ["0003"]


def test_four_processes_migrating_one_store_apply_each_revision_once(
    invoke, sk_home: Path, pg_admin_url: str, platform
) -> None:
    ok(invoke(f"syncstores {APP} --database db"))
    ok(invoke(f"stores migrate {APP} --database db --to 0001"))
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "MIGRATING_APP_DELAY": "0.5"}
    procs = [
        subprocess.Popen(
            [storekeeper_exe(), "stores", "migrate", APP, "--database", "db", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    done = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [code for code, _, _ in done] == [0, 0, 0, 0], done
    actions = sorted(json.loads(out)["results"][0]["action"] for _, out, _ in done)
    assert actions == ["up to date", "up to date", "up to date", "upgrade"]
    upgrades = [
        e for e in audit.list_events(platform, limit=20) if e.action == "store.migrate" and "upgrade" in e.detail
    ]
    assert len(upgrades) == 1 and upgrades[0].detail == "upgrade 0001 -> 0003"
    assert _version(pg_admin_url) == ["0003"]


@pytest.fixture
def autogen_versions() -> Iterator[Path]:
    """autogen_db's versions/ directory, with any revision a test writes removed afterwards."""
    before = set(AUTOGEN_VERSIONS.glob("*.py"))
    yield AUTOGEN_VERSIONS
    for path in set(AUTOGEN_VERSIONS.glob("*.py")) - before:
        path.unlink()


def test_revision_autogenerate_writes_the_missing_column(invoke, autogen_versions: Path) -> None:
    ok(invoke(f"syncstores {APP} --database autogen_db"))
    made = as_json(
        invoke(
            ["stores", "revision", APP, "--database", "autogen_db", "-m", "add item note", "--autogenerate", "--json"]
        )
    )
    assert (made["down_revision"], made["message"], made["compared_with"]) == (
        "a001",
        "add item note",
        "migrating_app_autogen_db",
    )
    source = Path(made["path"]).read_text()
    assert Path(made["path"]).parent == autogen_versions
    assert "op.add_column('items', sa.Column('note', sa.Text(), nullable=True))" in source
    assert "op.drop_column('items', 'note')" in source
    # The new revision is the head: a sync applies it.
    ok(invoke(f"syncstores {APP} --database autogen_db"))
    (current,) = [s for s in as_json(invoke(f"stores current {APP} --json")) if s["store"] == "autogen_db"]
    assert (current["current"], current["head"]) == (made["revision"], made["revision"])


def test_revision_without_autogenerate_writes_an_empty_revision(invoke, autogen_versions: Path) -> None:
    out = ok(invoke(["stores", "revision", APP, "--database", "autogen_db", "-m", "nothing yet"])).stdout
    assert "(a001 -> " in out and "nothing yet" in out
    (path,) = set(autogen_versions.glob("*nothing_yet.py"))
    source = path.read_text()
    assert "down_revision: str | Sequence[str] | None = 'a001'" in source
    assert "def upgrade() -> None:\n    pass" in source
