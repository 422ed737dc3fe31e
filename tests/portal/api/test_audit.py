"""``/api/v1/audit``: who did what through the API, filterable."""

from __future__ import annotations

from tests.portal.conftest import problem


def test_api_actions_are_recorded_with_the_signed_in_user(admin, service):
    admin.put("/api/v1/apps/my_first_app/settings/example_db", json={"service": service})
    events = admin.get("/api/v1/audit").json()
    newest = events[0]
    assert newest["action"] == "setting.assign"
    assert newest["target"] == "my_first_app/example_db"
    assert newest["actor"] == "user:admin"
    assert newest["outcome"] == "ok"
    assert newest["at"]


def test_filter_by_action_target_and_limit(admin, service):
    for setting in ("example_db", "temp_db"):
        admin.put(f"/api/v1/apps/my_first_app/settings/{setting}", json={"service": service})
    assigned = admin.get("/api/v1/audit", params={"action": "setting.assign"}).json()
    assert [e["target"] for e in assigned] == ["my_first_app/temp_db", "my_first_app/example_db"]
    by_target = admin.get("/api/v1/audit", params={"target": "my_first_app/temp"}).json()
    assert {e["target"] for e in by_target} == {"my_first_app/temp_db"}
    assert len(admin.get("/api/v1/audit", params={"limit": 1}).json()) == 1


def test_a_bad_limit_is_a_422(admin):
    doc = problem(admin.get("/api/v1/audit", params={"limit": 0}), 422, "limit")
    assert doc["errors"][0]["field"] == "query.limit"
