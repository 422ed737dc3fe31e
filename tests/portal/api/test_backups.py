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
