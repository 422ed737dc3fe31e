"""``GET /api/v1/apps/{app}/stores/{name}/export``: an admin downloads a store's backup file."""

from __future__ import annotations

from storekeeper import stores
from storekeeper.stores import backups, dumps
from tests.portal.conftest import problem

APP = "my_first_app"


def test_an_admin_downloads_a_backup_that_import_takes(admin, viewer, my_first_app, platform, tmp_path):
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    problem(viewer.get(f"/api/v1/apps/{APP}/stores/example_db/export"), 403)
    response = admin.get(f"/api/v1/apps/{APP}/stores/example_db/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert 'filename="my_first_app_example_db.skbackup"' in response.headers["content-disposition"]
    file = tmp_path / "downloaded.skbackup"
    file.write_bytes(response.content)
    assert dumps.read_manifest(file).manifest.store == "example_db"
    assert backups.import_store(platform, APP, "example_db", file, replace=True).action == "replaced"


def test_downloading_a_store_not_made_yet_is_a_404(admin, my_first_app):
    problem(admin.get(f"/api/v1/apps/{APP}/stores/example_db/export"), 404, "syncstores")


def test_an_admin_uploads_a_backup_to_restore_a_store(admin, viewer, my_first_app, platform, pg_admin_url, tmp_path):
    from tests.core.conftest import rows

    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    from tests.core.conftest import connect_to

    with connect_to(pg_admin_url, "my_first_app_example_db") as conn:
        conn.execute("DELETE FROM stream_gages")
    url = f"/api/v1/apps/{APP}/stores/example_db/import"
    headers = {"Content-Type": "application/octet-stream"}
    problem(viewer.post(url, content=file.read_bytes(), headers=headers), 403)
    problem(admin.post(url, content=file.read_bytes(), headers=headers), 409, "--replace")
    assert rows(pg_admin_url, "my_first_app_example_db", "SELECT count(*) FROM stream_gages") == [(0,)]
    problem(admin.post(url + "?replace=true", content=file.read_bytes()[:900], headers=headers), 422, "complete")
    response = admin.post(url + "?replace=true", content=file.read_bytes(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "replaced"
    assert rows(pg_admin_url, "my_first_app_example_db", "SELECT count(*) FROM stream_gages") == [(2,)]


def test_uploads_have_their_own_size_limit(sk_home, monkeypatch, platform):
    from fastapi.testclient import TestClient

    from storekeeper.config import load_config
    from storekeeper.portal.app import create_app

    monkeypatch.setenv("STOREKEEPER_PORTAL_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("STOREKEEPER_BACKUPS_MAX_UPLOAD_BYTES", "5000")
    with TestClient(create_app(load_config())) as client:
        url = f"/api/v1/apps/{APP}/stores/example_db/import"
        upload = client.post(url, content=b"x" * 5001)
        assert upload.status_code == 413
        # The problem names the setting that limits this route, and how to raise it.
        assert "backups.max_upload_bytes" in upload.json()["hint"] and "portal.max_body_bytes" not in upload.text
        assert client.post(url, content=b"x" * 4000).status_code == 401  # past the limit check: not signed in
        other = client.post("/api/v1/auth/token", content=b"x" * 1001)
        assert other.status_code == 413 and "portal.max_body_bytes" in other.json()["hint"]


def test_the_portal_backs_a_store_up_before_it_drops_or_refreshes_it(admin, my_first_app, platform, sk_home):
    from tests.portal.conftest import wait_for_job

    saved = sk_home / "backups"
    wait_for_job(admin, admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db"}).headers["location"])
    job = wait_for_job(
        admin, admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db", "refresh": True}).headers["location"]
    )
    assert job["status"] == "succeeded", job
    assert len(list(saved.glob("my_first_app_temp_db-*.skbackup"))) == 1
    assert admin.delete(f"/api/v1/apps/{APP}/stores/temp_db").status_code == 204
    assert len(list(saved.glob("my_first_app_temp_db-*.skbackup"))) == 2
    assert admin.delete(f"/api/v1/apps/{APP}/stores/temp_db?backup=false").status_code == 204  # nothing left to save
    assert len(list(saved.glob("*.skbackup"))) == 2
