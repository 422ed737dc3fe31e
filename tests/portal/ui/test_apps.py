"""The app page: assign services with the dropdowns, sync (a job, shown live and after reload), drop stores."""

from __future__ import annotations

import re
import time

from storekeeper import apps, stores
from storekeeper.portal import jobs
from tests.portal.ui.conftest import Web, text

SETTINGS = ("example_db", "spatial_db", "temp_db", "primary", "creator")


def _wait_for_job(platform, job_id: str, timeout: float = 60) -> jobs.JobInfo:
    deadline = time.monotonic() + timeout
    while True:
        job = jobs.get_job(platform, job_id)
        if job.finished:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def _assign_all(web: Web, service: str) -> None:
    for setting in SETTINGS:
        web.get("/admin/apps/my_first_app")
        response = web.post(f"/admin/apps/my_first_app/settings/{setting}", {"service": service})
        assert response.status_code == 303, response.text[:1000]


def test_choosing_a_service_in_the_dropdown_assigns_it(admin_web, service, platform):
    _assign_all(admin_web, service)
    info = apps.get_app(platform, "my_first_app")
    assert {s.name: s.service for s in info.settings} == dict.fromkeys(SETTINGS, service)
    page = admin_web.get("/admin/apps/my_first_app").text
    assert "configured" in page and "not configured" not in page


def test_choosing_none_unassigns_a_setting(admin_web, my_first_app, platform):
    admin_web.get("/admin/apps/my_first_app")
    response = admin_web.post("/admin/apps/my_first_app/settings/creator", {"service": ""})
    assert 'Setting "creator" has no service now' in text(admin_web.follow(response))
    assert next(s for s in apps.list_settings(platform, "my_first_app") if s.name == "creator").service is None


def test_assigning_an_unknown_service_shows_the_core_error(admin_web, my_first_app):
    admin_web.get("/admin/apps/my_first_app")
    response = admin_web.post("/admin/apps/my_first_app/settings/example_db", {"service": "nope"})
    assert response.status_code == 404
    assert 'Service "nope" does not exist' in text(response) and "Fix" in response.text


def test_sync_starts_a_job_and_the_page_shows_each_stores_result(admin_web, my_first_app, platform, postgis_available):
    admin_web.get("/admin/apps/my_first_app")
    response = admin_web.post("/admin/apps/my_first_app/sync")
    assert response.status_code == 303
    job_id = re.search(r"\?job=([0-9a-f]+)", response.headers["location"]).group(1)
    page = admin_web.follow(response).text
    assert f'data-job-url="/api/v1/jobs/{job_id}"' in page
    job = _wait_for_job(platform, job_id)
    assert job.actor == "user:admin"
    page = admin_web.get("/admin/apps/my_first_app").text  # the newest job, after a reload
    assert 'data-job-status="' + job.status + '"' in page
    assert '<tr data-store="example_db">' in page
    assert re.search(r'data-store="example_db">.*?badge-ok">ready', page, re.DOTALL)
    assert re.search(r'id="setting-example_db".*?badge-ok">initialized', page, re.DOTALL)
    if postgis_available:
        assert job.status == "succeeded", job


def test_the_job_api_the_page_polls_answers_the_session(admin_web, my_first_app, platform):
    admin_web.get("/admin/apps/my_first_app")
    location = admin_web.post("/admin/apps/my_first_app/sync", {"store": "temp_db"}).headers["location"]
    job_id = location.split("job=")[1].split("#")[0]
    _wait_for_job(platform, job_id)
    polled = admin_web.client.get(f"/api/v1/jobs/{job_id}")
    assert polled.status_code == 200
    assert [r["store"] for r in polled.json()["results"]] == ["temp_db"]


def test_dropping_a_dynamic_store_after_confirming(admin_web, my_first_app, platform):
    stores.create_store(platform, "my_first_app", "scratch", "primary")
    page = admin_web.get("/admin/apps/my_first_app").text
    assert "/admin/apps/my_first_app/stores/scratch/drop" in page
    admin_web.get("/admin/apps/my_first_app/stores/scratch/drop")
    response = admin_web.post("/admin/apps/my_first_app/stores/scratch/drop")
    message = text(admin_web.follow(response))
    assert 'Store "scratch" dropped' in message
    assert "Its data was saved in" in message  # a backup first, by default
    assert not stores.store_exists(platform, "my_first_app", "scratch")


def test_an_admin_may_drop_a_store_without_a_backup(admin_web, my_first_app, platform, sk_home):
    stores.create_store(platform, "my_first_app", "scratch", "primary")
    page = admin_web.get("/admin/apps/my_first_app/stores/scratch/drop").text
    assert 'name="skip_backup"' in page and "backups/" in page
    backups_dir = sk_home / "backups"
    before = sorted(backups_dir.rglob("*")) if backups_dir.exists() else []
    response = admin_web.post("/admin/apps/my_first_app/stores/scratch/drop", {"skip_backup": "1"})
    message = text(admin_web.follow(response))
    assert 'Store "scratch" dropped' in message and "saved in" not in message
    assert (sorted(backups_dir.rglob("*")) if backups_dir.exists() else []) == before
    assert not stores.store_exists(platform, "my_first_app", "scratch")


def test_a_store_with_migrations_shows_its_revision_and_applies_pending_ones_as_a_job(
    admin_web, viewer_web, platform, service
):
    from storekeeper.stores import migrations

    for setting in ("primary", "db"):
        apps.assign_service(platform, "migrating_app", setting, service)
    (synced,) = stores.sync_stores(platform, ["migrating_app"], database="db")
    assert synced.ok
    migrations.migrate(platform, "migrating_app", "db", to="0001")
    page = admin_web.get("/admin/apps/migrating_app").text
    assert 'data-schema-revision="0001" data-schema-pending="2"' in page
    assert '<code title="add gage name">0002</code>' in page
    assert 'data-apply-migrations="db"' in page
    assert 'data-apply-migrations="db"' not in viewer_web.get("/admin/apps/migrating_app").text  # admins only
    response = admin_web.post("/admin/apps/migrating_app/sync", {"store": "db"})
    assert response.status_code == 303
    job = _wait_for_job(platform, re.search(r"\?job=([0-9a-f]+)", response.headers["location"]).group(1))
    assert job.status == "succeeded", job
    page = admin_web.get("/admin/apps/migrating_app").text
    assert 'data-schema-revision="0003" data-schema-pending="0"' in page
    assert "data-apply-migrations" not in page


def test_the_home_page_shows_what_doctor_finds_with_its_fix(admin_web, platform, service):
    from storekeeper.stores import migrations

    for setting in ("primary", "db"):
        apps.assign_service(platform, "migrating_app", setting, service)
    assert stores.sync_stores(platform, ["migrating_app"], database="db")[0].ok
    migrations.migrate(platform, "migrating_app", "db", to="0002")
    page = admin_web.get("/admin/").text
    assert 'id="doctor"' in page
    found = re.search(
        r'<tr data-finding-level="warning">\s*<td>.*?</td>\s*<td><code>migrating_app/db</code></td>\s*'
        r"<td>(.*?)</td>\s*<td><code>(.*?)</code></td>",
        page,
        re.DOTALL,
    )
    assert found and "1 migration(s) pending (0003)" in found.group(1)
    assert found.group(2) == "storekeeper syncstores migrating_app --database db"
