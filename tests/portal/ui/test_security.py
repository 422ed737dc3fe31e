"""Who may do what in the web admin: sign-in redirects, CSRF, viewers' 403s, no secret on any page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storekeeper import audit, services
from storekeeper.platform.models import PortalSession
from storekeeper.portal import auth
from tests.portal.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, TestClient
from tests.portal.ui.conftest import admin_routes

#: Posts a viewer may make: they change nothing.
VIEWER_MAY = {("POST", "/admin/logout"), ("POST", "/admin/services/local/test"), ("POST", "/admin/login")}
#: Pages anyone may see.
PUBLIC = {("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin"), ("GET", "/admin/apps")}


def test_every_page_redirects_to_sign_in_without_a_session(anon_web, portal_app):
    routes = [(m, p) for m, p in admin_routes() if (m, p) not in PUBLIC]
    assert len(routes) > 15
    for method, path in routes:
        response = anon_web.client.request(method, path)
        assert response.status_code == 303, (method, path, response.status_code)
        location = urlsplit(response.headers["location"])
        assert location.path == "/admin/login", (method, path)
        if method == "GET":
            assert parse_qs(location.query)["next"] == [path]


def test_sign_in_returns_to_the_page_asked_for(anon_web, admin_user):
    login = anon_web.get("/admin/audit")
    assert login.headers["location"] == "/admin/login?next=%2Fadmin%2Faudit"
    anon_web.get(login.headers["location"])
    response = anon_web.post("/admin/login", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/admin/audit"})
    assert response.headers["location"] == "/admin/audit"
    assert anon_web.get("/admin/audit").status_code == 200


def test_sign_in_never_redirects_off_the_admin(anon_web, admin_user):
    anon_web.get("/admin/login")
    for target in ("https://evil.example/", "//evil.example/admin/", "/api/v1/apps"):
        response = anon_web.post("/admin/login", {"username": "admin", "password": ADMIN_PASSWORD, "next": target})
        assert response.headers["location"] == "/admin/", target


def test_a_wrong_password_shows_the_form_again_with_a_401(anon_web, admin_user):
    anon_web.get("/admin/login")
    response = anon_web.post("/admin/login", {"username": "admin", "password": "wrong-password"})
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert 'value="admin"' in response.text and "wrong-password" not in response.text
    assert auth.SESSION_COOKIE not in response.cookies


def test_failed_sign_ins_are_throttled_with_a_message(anon_web, admin_user):
    anon_web.get("/admin/login")
    for _ in range(auth.MAX_FAILURES):
        assert anon_web.post("/admin/login", {"username": "admin", "password": "wrong-password"}).status_code == 401
    response = anon_web.post("/admin/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.text and "wait" in response.text
    assert 0 < int(response.headers["retry-after"]) <= auth.BLOCK_SECONDS


def test_every_post_without_a_csrf_token_is_refused(admin_web, portal_app, service):
    posts = [(m, p) for m, p in admin_routes() if m == "POST"]
    assert len(posts) >= 12
    for _, path in posts:
        response = admin_web.post(path, {"service": service, "name": "x", "password": "long-enough-1"}, csrf=False)
        assert response.status_code == 403, (path, response.status_code)
        assert "CSRF" in response.text and "reload the page" in response.text
    # Nothing was changed, and the session survived.
    assert services.get_service(portal_app.state.portal.platform(), service).name == service
    assert admin_web.get("/admin/").status_code == 200


def test_a_csrf_token_of_another_browser_is_refused(admin_web, anon_web, portal_app, admin_user, responses):
    from tests.portal.conftest import TestClient
    from tests.portal.ui.conftest import Web

    with TestClient(portal_app, follow_redirects=False) as other_client:
        other = Web(other_client)
        other.get("/admin/login")
        stolen = other.csrf
    response = admin_web.post(
        "/admin/users", {"username": "mallory", "password": "long-enough-1", "csrf_token": stolen or ""}
    )
    assert response.status_code == 403


def test_a_sign_in_without_a_csrf_token_is_refused(anon_web, admin_user):
    response = anon_web.post("/admin/login", {"username": "admin", "password": ADMIN_PASSWORD}, csrf=False)
    assert response.status_code == 403
    assert auth.SESSION_COOKIE not in response.cookies


def test_a_viewer_gets_a_403_page_for_every_change(viewer_web, portal_app, my_first_app, platform):
    changes = [(m, p) for m, p in admin_routes() if m == "POST" and (m, p) not in VIEWER_MAY]
    assert len(changes) >= 10
    viewer_web.get("/admin/")  # lists (so registers) every installed app: app.register is not the viewer's change
    before = len(audit.list_events(platform, limit=1000))
    for _, path in changes:
        viewer_web.get("/admin/")
        response = viewer_web.post(
            path,
            {
                "service": "local",
                "name": "x",
                "password": "long-enough-1",
                "username": "x",
                "role": "admin",
                "active": "0",
            },
        )
        assert response.status_code == 403, (path, response.status_code, response.text[:500])
        assert "is a viewer" in response.text and "admin" in response.text
    assert len(audit.list_events(platform, limit=1000)) == before


def test_a_viewer_may_test_a_service_and_sign_out(viewer_web, service):
    viewer_web.get(f"/admin/services/{service}")
    assert viewer_web.post(f"/admin/services/{service}/test").status_code == 200
    response = viewer_web.post("/admin/logout")
    assert response.headers["location"] == "/admin/login"
    assert viewer_web.get("/admin/").status_code == 303


def test_signing_out_ends_the_session(admin_web):
    admin_web.get("/admin/")
    admin_web.post("/admin/logout")
    assert admin_web.get("/admin/").status_code == 303


def _replay(portal_app, cookie: str) -> tuple[int, int]:
    """Present a copied session cookie from another browser; return (admin home status, /auth/me status)."""
    with TestClient(portal_app, follow_redirects=False) as thief:
        thief.cookies.set(auth.SESSION_COOKIE, cookie)
        return thief.get("/admin/").status_code, thief.get("/api/v1/auth/me").status_code


def test_a_session_cookie_replayed_after_sign_out_is_refused(admin_web, portal_app, platform):
    admin_web.get("/admin/")
    copied = admin_web.client.cookies.get(auth.SESSION_COOKIE)
    assert copied and _replay(portal_app, copied) == (200, 200)  # the copy works while the session lasts
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(PortalSession)) == 1
    admin_web.post("/admin/logout")
    assert _replay(portal_app, copied) == (303, 401)
    with platform.session() as session:
        assert session.scalar(select(func.count()).select_from(PortalSession)) == 0


def test_a_session_cookie_replayed_after_a_password_reset_is_refused(admin_web, viewer_web, portal_app):
    copied = viewer_web.client.cookies.get(auth.SESSION_COOKIE)
    assert _replay(portal_app, copied) == (200, 200)
    admin_web.get("/admin/users")
    reset = admin_web.post("/admin/users/viewer/password", {"password": "another-password-2"})
    assert reset.status_code == 303
    assert _replay(portal_app, copied) == (303, 401)
    assert viewer_web.get("/admin/").status_code == 303
    # The admin who reset it is still signed in: only the viewer's sessions ended.
    assert admin_web.get("/admin/").status_code == 200


def test_a_session_cookie_planted_before_sign_in_is_not_kept(anon_web, admin_user, portal_app):
    anon_web.sign_in(admin_user, ADMIN_PASSWORD)
    first = anon_web.client.cookies.get(auth.SESSION_COOKIE)
    anon_web.sign_in(admin_user, ADMIN_PASSWORD)  # signing in again replaces this browser's session
    assert anon_web.client.cookies.get(auth.SESSION_COOKIE) != first
    assert _replay(portal_app, first) == (303, 401)


def test_a_disabled_users_session_ends(viewer_web, platform):
    from storekeeper import users

    users.update_user(platform, "viewer", active=False)
    assert viewer_web.get("/admin/").status_code == 303


def test_the_service_password_is_never_on_a_page(admin_web, my_first_app, service, pg_admin_url):
    password = make_url(pg_admin_url).password
    assert password
    pages = [
        "/admin/",
        "/admin/services",
        f"/admin/services/{service}",
        "/admin/apps/my_first_app",
        "/admin/audit",
        "/admin/users",
    ]
    for page in pages:
        assert password not in admin_web.get(page).text, page
    admin_web.get(f"/admin/services/{service}")
    tested = admin_web.post(f"/admin/services/{service}/test")
    assert tested.status_code == 200 and password not in tested.text
    # A failed save shows the form again without the password typed into it.
    failed = admin_web.post(
        f"/admin/services/{service}",
        {
            "host": "h",
            "port": "nope",
            "username": "u",
            "maintenance_db": "postgres",
            "password": password,
            "connect_timeout": "10",
            "pool_size": "3",
        },
    )
    assert failed.status_code == 400 and password not in failed.text
    # The anon/admin fixtures also check every response (bodies and headers) for it.


def test_passwords_of_users_are_never_on_a_page(admin_web, viewer_user):
    html = admin_web.get("/admin/users").text
    assert VIEWER_PASSWORD not in html and ADMIN_PASSWORD not in html
    assert "argon2" not in html


def test_session_and_flash_cookies_are_httponly(anon_web, admin_user):
    anon_web.get("/admin/login")
    response = anon_web.post("/admin/login", {"username": "admin", "password": ADMIN_PASSWORD})
    cookies = response.headers.get_list("set-cookie")
    assert cookies and all("httponly" in c.lower() for c in cookies)
    assert all("samesite=lax" in c.lower() for c in cookies)


def test_a_signed_in_visit_to_the_login_page_goes_home_not_round_in_circles(admin_web):
    response = admin_web.get("/admin/login?next=%2Fadmin%2Flogin")
    assert response.headers["location"] == "/admin/"


def test_healthz_details_are_for_an_admin_signed_in_by_session_only(admin_web, viewer_web, service):
    admin_health = admin_web.get("/healthz").json()
    assert admin_health["status"] == "ok" and [s["name"] for s in admin_health["services"]] == [service]
    assert viewer_web.get("/healthz").json() == {"status": "ok"}
    admin_web.post("/admin/logout")
    assert admin_web.get("/healthz").json() == {"status": "ok"}


def test_a_password_set_again_from_the_cli_ends_that_users_sessions(viewer_web, portal_app, platform):
    from storekeeper import users

    copied = viewer_web.client.cookies.get(auth.SESSION_COOKIE)
    users.upsert_user(platform, "viewer", "set-again-password-3", role="viewer")  # what db configure does
    assert _replay(portal_app, copied) == (303, 401)
