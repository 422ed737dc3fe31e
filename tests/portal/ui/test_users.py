"""The users page: add users, disable them, reset passwords; API tokens created (shown once) and revoked."""

from __future__ import annotations

from storekeeper import users
from storekeeper.portal import auth
from tests.portal.conftest import VIEWER_PASSWORD
from tests.portal.ui.conftest import text


def test_adding_a_viewer(admin_web, platform):
    admin_web.get("/admin/users")
    response = admin_web.post("/admin/users", {"username": "vic", "password": "vic-password-1", "role": "viewer"})
    assert 'User "vic" added' in text(admin_web.follow(response))
    assert users.get_user(platform, "vic").role == "viewer"


def test_a_short_password_is_refused_with_the_rule(admin_web):
    admin_web.get("/admin/users")
    response = admin_web.post("/admin/users", {"username": "vic", "password": "short", "role": "viewer"})
    assert response.status_code == 400
    assert "at least 8 characters" in response.text


def test_an_unknown_role_is_refused_naming_the_roles(admin_web):
    admin_web.get("/admin/users")
    response = admin_web.post("/admin/users", {"username": "vic", "password": "vic-password-1", "role": "root"})
    assert response.status_code == 400
    assert "is not one of admin, viewer" in response.text
    assert "--role" not in response.text  # no such flag: the hint names the roles


def test_disabling_a_user_ends_their_session(admin_web, viewer_web, platform):
    admin_web.get("/admin/users")
    response = admin_web.post("/admin/users/viewer/active", {"active": "0"})
    assert 'User "viewer" disabled' in text(admin_web.follow(response))
    assert users.get_user(platform, "viewer").active is False
    assert viewer_web.get("/admin/").status_code == 303


def test_the_only_admin_cannot_disable_themselves(admin_web, platform):
    admin_web.get("/admin/users")
    response = admin_web.post("/admin/users/admin/active", {"active": "0"})
    assert response.status_code == 409
    assert "only active admin" in response.text


def test_resetting_a_password(admin_web, viewer_user, platform):
    admin_web.get("/admin/users")
    admin_web.post("/admin/users/viewer/password", {"password": "new-viewer-password"})
    assert users.verify_user(platform, "viewer", "new-viewer-password")
    assert users.verify_user(platform, "viewer", VIEWER_PASSWORD) is None


def test_changing_a_role(admin_web, viewer_user, platform):
    admin_web.get("/admin/users")
    admin_web.post("/admin/users/viewer/role", {"role": "admin"})
    assert users.get_user(platform, "viewer").role == "admin"


def test_a_new_token_is_shown_once_and_works(admin_web, platform):
    admin_web.get("/admin/users")
    response = admin_web.post("/admin/users/tokens", {"name": "deploy script"})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    token = response.text.split('id="new-token-value"')[1].split('value="')[1].split('"')[0]
    assert token.startswith(auth.TOKEN_PREFIX)
    assert auth.authenticate_token(platform, token).username == "admin"
    listing = admin_web.get("/admin/users").text
    assert "deploy script" in listing and token not in listing and token[: auth.SHOWN_PREFIX] in listing


def test_revoking_a_token(admin_web, platform):
    info, token = auth.create_token(platform, "admin", "old")
    admin_web.get("/admin/users")
    response = admin_web.post(f"/admin/users/tokens/{info.id}/revoke")
    assert 'Token "old" of admin revoked' in text(admin_web.follow(response))
    assert auth.authenticate_token(platform, token) is None


def test_a_viewer_sees_only_their_own_tokens_and_no_user_list(viewer_web, platform, admin_user):
    auth.create_token(platform, "admin", "admins-token")
    auth.create_token(platform, "viewer", "viewers-token")
    html = viewer_web.get("/admin/users").text
    assert "viewers-token" in html and "admins-token" not in html
    assert "Add user" not in html and "Create token" not in html
