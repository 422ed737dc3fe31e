"""``/api/v1/users``: admins list, create, disable and reset the passwords of users."""

from __future__ import annotations

from tests.portal.conftest import problem


def test_list_users(admin, viewer_token):
    assert admin.get("/api/v1/users").json() == [
        {"username": "admin", "role": "admin", "active": True},
        {"username": "viewer", "role": "viewer", "active": True},
    ]


def test_create_a_viewer_by_default_who_can_sign_in(admin, anon):
    response = admin.post("/api/v1/users", json={"username": "erin", "password": "erin-password"})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/users/erin"
    assert response.json() == {"username": "erin", "role": "viewer", "active": True}
    assert "password" not in response.text
    signed_in = anon.post("/api/v1/auth/token", json={"username": "erin", "password": "erin-password"})
    assert signed_in.status_code == 201


def test_create_an_existing_user_is_a_409(admin):
    doc = problem(admin.post("/api/v1/users", json={"username": "admin", "password": "whatever-pw"}), 409, '"admin"')
    assert doc["user"] == "admin"


def test_create_with_a_short_password_is_a_422(admin):
    problem(admin.post("/api/v1/users", json={"username": "frank", "password": "short"}), 422, "password")


def test_create_with_an_unknown_role_is_a_422(admin):
    problem(
        admin.post("/api/v1/users", json={"username": "frank", "password": "long-enough", "role": "root"}), 422, "role"
    )


def test_disable_and_enable_a_user(admin, anon, viewer_token):
    assert admin.patch("/api/v1/users/viewer", json={"active": False}).json()["active"] is False
    problem(anon.post("/api/v1/auth/token", json={"username": "viewer", "password": "viewer-password-1"}), 401)
    assert admin.patch("/api/v1/users/viewer", json={"active": True}).json()["active"] is True
    assert anon.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {viewer_token}"}).status_code == 200


def test_reset_a_password(admin, anon, viewer_token):
    assert admin.patch("/api/v1/users/viewer", json={"password": "brand-new-password"}).status_code == 200
    problem(anon.post("/api/v1/auth/token", json={"username": "viewer", "password": "viewer-password-1"}), 401)
    assert (
        anon.post("/api/v1/auth/token", json={"username": "viewer", "password": "brand-new-password"}).status_code
        == 201
    )


def test_promote_a_viewer(admin, viewer_token, anon):
    assert admin.patch("/api/v1/users/viewer", json={"role": "admin"}).json()["role"] == "admin"
    me = anon.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {viewer_token}"}).json()
    assert me["role"] == "admin"


def test_the_last_active_admin_cannot_be_disabled_or_demoted(admin):
    problem(admin.patch("/api/v1/users/admin", json={"active": False}), 409, "only active admin", "another admin")
    problem(admin.patch("/api/v1/users/admin", json={"role": "viewer"}), 409, "only active admin")


def test_change_an_unknown_user_is_a_404(admin):
    doc = problem(admin.patch("/api/v1/users/nobody", json={"active": False}), 404, '"nobody"')
    assert doc["user"] == "nobody"
    assert doc["type"] == "urn:storekeeper:problem:user-error"
    assert doc["title"] == "Not found"
    problem(admin.get("/api/v1/users/nobody"), 404, '"nobody"')


def test_user_changes_are_audited_with_the_admin_as_actor(admin, viewer_token):
    admin.patch("/api/v1/users/viewer", json={"active": False, "password": "another-password"})
    [event] = admin.get("/api/v1/audit", params={"action": "user.update", "target": "viewer"}).json()
    assert event["actor"] == "user:admin"
    assert event["detail"] == "disabled, password reset"
