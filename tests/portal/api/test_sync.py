"""``POST /api/v1/apps/{app}/sync``: a 202 and a job that any worker can report, store by store."""

from __future__ import annotations

import pytest

from tests.portal.conftest import problem, wait_for_job

APP = "my_first_app"


def test_sync_one_store_answers_202_with_a_job_that_succeeds(admin, my_first_app):
    response = admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "example_db"})
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location == response.json()["url"]
    assert location.startswith("/api/v1/jobs/")
    assert response.json()["status"] in ("queued", "running", "succeeded")
    job = wait_for_job(admin, location)
    assert job["status"] == "succeeded"
    assert job["actor"] == "user:admin"
    assert job["params"] == {"store": "example_db", "refresh": False, "firsttime": False}
    [result] = job["results"]
    assert result["store"] == "example_db"
    assert result["ok"] is True
    assert result["action"] == "created"
    assert result["first_time"] is True
    assert job["started_at"] and job["finished_at"]
    stores = {s["name"]: s for s in admin.get(f"/api/v1/apps/{APP}/stores").json()}
    assert stores["example_db"]["exists"] is True
    assert stores["example_db"]["initialized"] is True


def test_sync_every_store_makes_the_app_ready(admin, my_first_app, postgis_available):
    from tests.pg_server import require_postgis

    require_postgis(postgis_available)
    response = admin.post(f"/api/v1/apps/{APP}/sync")
    job = wait_for_job(admin, response.headers["location"])
    assert job["status"] == "succeeded", job
    assert {r["store"] for r in job["results"]} == {"example_db", "spatial_db", "temp_db"}
    assert admin.get(f"/api/v1/apps/{APP}").json()["ready"] is True


def test_sync_with_refresh_and_firsttime_recreates_the_store(admin, my_first_app):
    wait_for_job(admin, admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db"}).headers["location"])
    job = wait_for_job(
        admin,
        admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db", "refresh": True, "firsttime": True}).headers[
            "location"
        ],
    )
    assert job["status"] == "succeeded"
    assert job["results"][0]["action"] == "recreated"
    assert job["results"][0]["first_time"] is True


def test_a_failing_store_fails_the_job_with_the_error_and_hint(admin, platform, service, tmp_path, monkeypatch):
    from storekeeper import apps

    (tmp_path / "fail").touch()
    monkeypatch.setenv("FLAKY_APP_FAIL", str(tmp_path / "fail"))

    apps.assign_service(platform, "flaky_app", "db", service)
    job = wait_for_job(admin, admin.post("/api/v1/apps/flaky_app/sync").headers["location"])
    assert job["status"] == "failed"
    assert "1 of 1" in job["error"]
    assert "storekeeper syncstores flaky_app" in job["hint"]
    [result] = job["results"]
    assert result["ok"] is False
    assert "simulated failure" in result["error"]


def test_an_unassigned_required_store_is_a_failed_result_naming_the_assign_command(admin, service):
    job = wait_for_job(admin, admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "example_db"}).headers["location"])
    assert job["status"] == "failed"
    assert f"app-settings set {APP} example_db" in job["results"][0]["hint"]


def test_sync_an_unknown_app_is_a_404_and_makes_no_job(admin):
    problem(admin.post("/api/v1/apps/no_such_app/sync"), 404, '"no_such_app"')
    assert admin.get("/api/v1/jobs").json() == []


def test_sync_an_unknown_store_is_a_404_listing_the_stores(admin, my_first_app):
    doc = problem(admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "nope"}), 404, '"nope"', "example_db")
    assert doc["setting"] == "nope"


def test_sync_with_an_unknown_option_is_a_422(admin, my_first_app):
    problem(admin.post(f"/api/v1/apps/{APP}/sync", json={"stores": "example_db"}), 422, "stores")


def test_jobs_list_shows_the_newest_first_and_filters_by_app(admin, my_first_app):
    first = admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db"}).json()["id"]
    wait_for_job(admin, f"/api/v1/jobs/{first}")
    second = admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db"}).json()["id"]
    wait_for_job(admin, f"/api/v1/jobs/{second}")
    assert [j["id"] for j in admin.get("/api/v1/jobs").json()] == [second, first]
    assert admin.get("/api/v1/jobs", params={"app": "flaky_app"}).json() == []


def test_an_unknown_job_is_a_404(admin):
    doc = problem(admin.get("/api/v1/jobs/0123456789abcdef"), 404, "0123456789abcdef", "GET /api/v1/jobs")
    assert doc["job"] == "0123456789abcdef"
    assert (doc["type"], doc["title"]) == ("urn:storekeeper:problem:job-error", "Not found")


def test_another_worker_answers_for_the_job(admin, my_first_app, portal_app, responses, admin_token):
    """A second app (another worker's) reads the job from the platform database."""
    from storekeeper.config import load_config
    from storekeeper.portal.app import create_app
    from tests.portal.conftest import TestClient

    location = admin.post(f"/api/v1/apps/{APP}/sync", json={"store": "temp_db"}).headers["location"]
    with TestClient(create_app(load_config()), headers={"Authorization": f"Bearer {admin_token}"}) as other:
        job = wait_for_job(other, location)
    assert job["status"] == "succeeded"


@pytest.mark.parametrize("status", ["queued", "running"])
def test_jobs_of_a_dead_worker_are_marked_failed_on_startup(platform, status):
    from storekeeper.platform.models import Job
    from storekeeper.portal import jobs

    with platform.session() as session:
        session.add(
            Job(
                id="lost" + status,
                app=APP,
                kind="sync",
                status=status,
                params={},
                results=[],
                actor="user:admin",
                worker=f"{jobs.worker_name().rpartition(':')[0]}:999999999",
            )
        )
    assert jobs.fail_lost_jobs(platform) == 1
    job = jobs.get_job(platform, "lost" + status)
    assert job.status == "failed"
    assert "stopped" in (job.error or "")
    assert f"/api/v1/apps/{APP}/sync" in (job.hint or "")
