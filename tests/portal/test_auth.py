"""Who may do what: API tokens, 401s, viewers' 403s, throttled sign-in, sessions and CSRF."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import update

from storekeeper import users
from storekeeper.config import load_config
from storekeeper.platform.models import ApiToken, SignInThrottle, utcnow
from storekeeper.portal import auth
from storekeeper.portal.app import create_app
from tests.portal.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, TestClient, problem

#: Endpoints anyone may call.
PUBLIC = {("POST", "/api/v1/auth/token"), ("GET", "/healthz")}
#: Non-GET requests a viewer may make: revoking their own tokens, and testing a service (which changes nothing).
VIEWER_MAY = {("DELETE", "/api/v1/auth/tokens/{token_id}"), ("POST", "/api/v1/services/{name}/test")}
#: Reads that are for admins only.
#: Reads only admins may make: users, and a store's backup file (all of its data).
ADMIN_READS = {
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{username}"),
    ("GET", "/api/v1/apps/{app}/stores/{name}/export"),
}
SAMPLE = {
    "token_id": "1",
    "name": "local",
    "app": "my_first_app",
    "setting": "example_db",
    "job_id": "x",
    "username": "viewer",
}


def _api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the API, as its OpenAPI schema publishes them."""
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in item
    ]


def _url(path: str) -> str:
    for key, value in SAMPLE.items():
        path = path.replace("{" + key + "}", value)
    return path


def test_every_api_endpoint_but_sign_in_needs_a_token(anon, portal_app):
    routes = [r for r in _api_routes(portal_app) if r not in PUBLIC]
    assert len(routes) > 20
    for method, path in routes:
        response = anon.request(method, _url(path), json={})
        doc = problem(response, 401, "POST /api/v1/auth/token")
        assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
        assert doc["title"] == "Not signed in"


def test_an_unknown_token_is_a_401(anon):
    response = anon.get("/api/v1/apps", headers={"Authorization": "Bearer skt_not-a-real-token"})
    problem(response, 401, "not valid")


def test_a_token_in_another_scheme_is_a_401(anon, admin_token):
    problem(anon.get("/api/v1/apps", headers={"Authorization": f"Basic {admin_token}"}), 401)


def test_a_viewer_gets_403_on_every_change(viewer, portal_app, service):
    changes = [(m, p) for m, p in _api_routes(portal_app) if m != "GET" and (m, p) not in PUBLIC | VIEWER_MAY]
    assert len(changes) >= 10
    for method, path in changes:
        doc = problem(viewer.request(method, _url(path), json={}), 403, '"viewer"', "admin")
        assert doc["user"] == "viewer"


def test_a_viewer_may_read(viewer, portal_app, service):
    reads = [(m, p) for m, p in _api_routes(portal_app) if m == "GET" and (m, p) not in ADMIN_READS]
    for method, path in reads:
        response = viewer.request(method, _url(path))
        assert response.status_code in (200, 404), (path, response.text)  # 404: the sample job does not exist
    for method, path in ADMIN_READS:
        problem(viewer.request(method, _url(path)), 403)


def test_sign_in_returns_a_token_once_that_works(anon, platform):
    users.upsert_user(platform, "alice", "alice-password", role="viewer")
    response = anon.post("/api/v1/auth/token", json={"username": "alice", "password": "alice-password", "name": "cli"})
    assert response.status_code == 201, response.text
    created = response.json()
    token = created["token"]
    assert token.startswith("skt_") and len(token) > 40
    assert created["token_type"] == "bearer"
    assert created["prefix"] == token[:12]
    me = anon.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"username": "alice", "role": "viewer", "via": "token"}
    listed = anon.get("/api/v1/auth/tokens", headers={"Authorization": f"Bearer {token}"}).json()
    assert [t["name"] for t in listed] == ["cli"]
    assert "token" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    assert token not in anon.get("/api/v1/auth/tokens", headers={"Authorization": f"Bearer {token}"}).text


def test_a_token_without_a_name_is_named_after_its_client(anon, platform):
    users.upsert_user(platform, "carol", "carol-password", role="viewer")
    creds = {"username": "carol", "password": "carol-password"}
    names = []
    for agent in ("curl/8.5.0", "python-httpx/0.27.0", "", "  /weird"):
        response = anon.post("/api/v1/auth/token", json=creds, headers={"User-Agent": agent})
        assert response.status_code == 201, response.text
        names.append(response.json()["name"])
    assert names == ["curl", "python-httpx", "api", "api"]
    named = anon.post("/api/v1/auth/token", json={**creds, "name": "deploy script"}, headers={"User-Agent": "curl/8"})
    assert named.json()["name"] == "deploy script"
    token = named.json()["token"]
    listed = anon.get("/api/v1/auth/tokens", headers={"Authorization": f"Bearer {token}"}).json()
    assert [t["name"] for t in listed] == ["deploy script", "api", "api", "python-httpx", "curl"]
    problem(anon.post("/api/v1/auth/token", json={**creds, "name": ""}), 422)
    problem(anon.post("/api/v1/auth/token", json={**creds, "name": "x" * 101}), 422)


def test_default_token_names() -> None:
    assert auth.default_token_name("curl/8.5.0") == "curl"
    assert auth.default_token_name("Mozilla/5.0 (X11; Linux x86_64)") == "Mozilla"
    assert auth.default_token_name(None) == auth.default_token_name("") == "api"
    assert auth.default_token_name("x" * 500) == "x" * 60


def test_tokens_are_stored_as_sha256_hashes_only(platform):
    from sqlalchemy import select

    from storekeeper.platform.models import ApiToken

    users.upsert_user(platform, "bob", "bob-password", role="admin")
    info, token = auth.create_token(platform, "bob", "x")
    with platform.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.id == info.id))
        assert row is not None
        assert row.token_hash == auth.hash_token(token) != token


def test_sign_in_with_a_wrong_password_is_a_401(anon, admin_token):
    problem(anon.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong-password"}), 401, "Wrong")


def test_sign_in_without_a_password_is_a_422(anon):
    problem(anon.post("/api/v1/auth/token", json={"username": "admin"}), 422, "password")


def test_failed_sign_ins_are_throttled_per_user_and_client(anon, portal_app, platform, admin_token, responses):
    wrong = {"username": "admin", "password": "wrong-password"}
    for _ in range(auth.MAX_FAILURES):
        assert anon.post("/api/v1/auth/token", json=wrong).status_code == 401
    blocked = anon.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    doc = problem(blocked, 429, "Too many", "wait")
    assert 0 < int(blocked.headers["retry-after"]) <= auth.BLOCK_SECONDS
    assert doc["user"] == "admin"
    # Another client address is not blocked, nor is another user from this one.
    with TestClient(portal_app, client=("10.1.2.3", 4000)) as other:
        assert (
            other.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 201
        )
    users.upsert_user(platform, "carol", "carol-password", role="viewer")
    assert anon.post("/api/v1/auth/token", json={"username": "carol", "password": "carol-password"}).status_code == 201
    # Once the block has run out, the right password works and clears the count.
    with platform.session() as session:
        for row in session.query(SignInThrottle):
            row.blocked_until = utcnow() - timedelta(seconds=1)
    assert anon.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 201
    assert anon.post("/api/v1/auth/token", json=wrong).status_code == 401


def test_old_throttle_counts_are_forgotten(platform, admin_token):
    with platform.session() as session:
        session.add(SignInThrottle(key="0" * 64, failures=3, window_started_at=utcnow() - timedelta(hours=1)))
    with pytest.raises(Exception, match="Wrong"):
        auth.sign_in(platform, "admin", "wrong-password", client="10.9.9.9")
    with platform.session() as session:
        assert session.get(SignInThrottle, "0" * 64) is None
        assert session.query(SignInThrottle).count() == 1


def test_failed_sign_ins_are_audited_without_the_password(admin, anon):
    anon.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong-password-xyz"})
    events = admin.get("/api/v1/audit", params={"action": "user.sign_in"}).json()
    assert events[0]["outcome"] == "error"
    assert events[0]["actor"] == "client:testclient"
    assert "wrong-password-xyz" not in str(events)


def test_a_revoked_token_stops_working(admin, anon, platform):
    users.upsert_user(platform, "dave", "dave-password", role="viewer")
    info, token = auth.create_token(platform, "dave", "x")
    bearer = {"Authorization": f"Bearer {token}"}
    assert anon.get("/api/v1/auth/me", headers=bearer).status_code == 200
    assert anon.delete(f"/api/v1/auth/tokens/{info.id}", headers=bearer).status_code == 204  # own token
    problem(anon.get("/api/v1/auth/me", headers=bearer), 401)
    listed = {t["id"]: t for t in admin.get("/api/v1/auth/tokens").json()}
    assert listed[info.id]["revoked"] is True


def test_a_viewer_cannot_revoke_someone_elses_token(viewer, platform, admin_token):
    admin_tokens = auth.list_tokens(platform, "admin")
    problem(viewer.delete(f"/api/v1/auth/tokens/{admin_tokens[0].id}"), 404, "viewer")


def test_an_admin_lists_and_revokes_everyones_tokens(admin, viewer_token, platform):
    listed = admin.get("/api/v1/auth/tokens").json()
    assert {t["username"] for t in listed} == {"admin", "viewer"}
    viewer_id = next(t["id"] for t in listed if t["username"] == "viewer")
    assert admin.delete(f"/api/v1/auth/tokens/{viewer_id}").status_code == 204
    assert auth.authenticate_token(platform, viewer_token) is None


def test_a_disabled_users_token_stops_working(admin, anon, viewer_token):
    assert admin.patch("/api/v1/users/viewer", json={"active": False}).status_code == 200
    problem(anon.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {viewer_token}"}), 401)


def _revoke_behind_the_portals_back(platform, token_id: int) -> None:
    """Revoke a token the way another process does: in the platform database, not through this process."""
    with platform.session() as session:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked=True))


def test_a_token_revoked_by_another_process_is_refused_within_the_cache_time(sk_home, platform, monkeypatch):
    monkeypatch.setenv("STOREKEEPER_PORTAL_TOKEN_CACHE_SECONDS", "3")
    users.upsert_user(platform, "erin", "erin-password", role="admin")
    info, token = auth.create_token(platform, "erin", "x")
    with TestClient(create_app(load_config()), headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/auth/me").status_code == 200
        _revoke_behind_the_portals_back(platform, info.id)
        # This worker checked the token a moment ago: it trusts that answer for the cache time ...
        assert client.get("/api/v1/auth/me").status_code == 200
        deadline = time.monotonic() + 3 + 2.0
        while client.get("/api/v1/auth/me").status_code == 200:
            assert time.monotonic() < deadline, "a revoked token still worked after portal.token_cache_seconds"
            time.sleep(0.1)
        # ... and no longer.
        problem(client.get("/api/v1/auth/me"), 401)


def test_with_no_token_cache_a_revocation_elsewhere_counts_at_once(sk_home, platform, monkeypatch):
    monkeypatch.setenv("STOREKEEPER_PORTAL_TOKEN_CACHE_SECONDS", "0")
    users.upsert_user(platform, "erin", "erin-password", role="admin")
    info, token = auth.create_token(platform, "erin", "x")
    with TestClient(create_app(load_config()), headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/auth/me").status_code == 200
        _revoke_behind_the_portals_back(platform, info.id)
        problem(client.get("/api/v1/auth/me"), 401)


def test_changes_made_in_this_process_count_at_once_despite_the_cache(sk_home, platform, monkeypatch):
    monkeypatch.setenv("STOREKEEPER_PORTAL_TOKEN_CACHE_SECONDS", "300")
    users.upsert_user(platform, "root", "root-password", role="admin")
    users.upsert_user(platform, "erin", "erin-password", role="admin")
    _, root = auth.create_token(platform, "root", "x")
    _, erin = auth.create_token(platform, "erin", "x")
    as_root = {"Authorization": f"Bearer {root}"}
    as_erin = {"Authorization": f"Bearer {erin}"}
    with TestClient(create_app(load_config())) as client:
        assert client.get("/api/v1/users", headers=as_erin).status_code == 200  # cached as an admin
        assert client.patch("/api/v1/users/erin", json={"role": "viewer"}, headers=as_root).status_code == 200
        problem(client.get("/api/v1/users", headers=as_erin), 403)  # demoted: no longer an admin
        assert client.patch("/api/v1/users/erin", json={"active": False}, headers=as_root).status_code == 200
        problem(client.get("/api/v1/auth/me", headers=as_erin), 401)


def test_the_token_cache_keeps_hashes_not_tokens_and_stays_bounded():
    cache = auth.TokenCache(60)
    principal = auth.Principal("erin", "admin", "token", 1)
    token = "skt_" + "a" * 43
    cache.put(token, principal)
    assert cache.get(token) == principal
    assert cache.get(token + "b") is None
    assert token not in repr(cache._entries)
    for i in range(auth.TokenCache.MAX_ENTRIES + 5):
        cache.put(f"skt_{i}", principal)
    assert len(cache._entries) <= auth.TokenCache.MAX_ENTRIES
    users.credentials_changed()
    assert cache.get(f"skt_{auth.TokenCache.MAX_ENTRIES}") is None  # a change of rights empties it
    assert auth.TokenCache(0).get(token) is None


def test_an_expired_token_is_checked_again_once_not_once_per_request_in_flight(monkeypatch):
    cache = auth.TokenCache(5)
    principal = auth.Principal("erin", "admin", "token", 1)
    token = "skt_" + "b" * 43
    cache.put(token, principal)
    now = time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: now + 6)  # the entry has run out
    assert cache.get(token) is None
    assert cache.claim(token) is None  # the first request checks it again ...
    assert cache.claim(token) == principal  # ... the others meanwhile use the last answer
    cache.release(token, None)  # the check refused it (revoked): nobody uses it any more
    assert cache.get(token) is None
    assert cache.claim(token) is None
    cache.release(token, principal)
    assert cache.get(token) == principal
    users.credentials_changed()  # a change made in this process: not even while a check runs
    assert cache.claim(token) is None
    assert cache.claim(token) is None


# -- sessions and CSRF (the web admin's building blocks) ---------------------------------------


@pytest.fixture
def session_app(portal_app: FastAPI) -> FastAPI:
    """The portal plus two tiny routes standing in for the web admin's sign-in form."""

    @portal_app.get("/test/form")
    def form(request: Request, response: Response) -> dict[str, str]:
        return {"csrf": auth.csrf_token(request, response)}

    @portal_app.post("/test/signin")
    async def signin(request: Request, response: Response) -> dict[str, str]:
        data = await request.json()
        auth.require_csrf(request, data.get("csrf"))
        platform = request.app.state.portal.platform()
        user = auth.sign_in(platform, data["username"], data["password"], client=auth.client_address(request))
        auth.start_session(response, request, platform, user)
        return {"ok": "yes"}

    @portal_app.post("/test/signout")
    def signout(request: Request, response: Response) -> dict[str, str]:
        auth.end_session(response, request, request.app.state.portal.platform())
        return {"ok": "yes"}

    return portal_app


def _sign_in(client: TestClient, password: str = ADMIN_PASSWORD) -> str:
    csrf = client.get("/test/form").json()["csrf"]
    response = client.post("/test/signin", json={"username": "admin", "password": password, "csrf": csrf})
    assert response.status_code == 200, response.text
    return csrf


def test_a_session_cookie_is_signed_httponly_and_samesite_lax(session_app, admin_token):
    with TestClient(session_app) as client:
        csrf = client.get("/test/form").json()["csrf"]
        response = client.post("/test/signin", json={"username": "admin", "password": ADMIN_PASSWORD, "csrf": csrf})
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and auth.SESSION_COOKIE in v)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie
    assert ADMIN_PASSWORD not in cookie


def test_the_session_cookie_is_secure_over_https(session_app, admin_token):
    with TestClient(session_app, base_url="https://portal.example") as client:
        csrf = client.get("/test/form").json()["csrf"]
        response = client.post("/test/signin", json={"username": "admin", "password": ADMIN_PASSWORD, "csrf": csrf})
        assert client.get("/api/v1/auth/me").json()["via"] == "session"
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert any(auth.SESSION_COOKIE in c and "Secure" in c for c in cookies)


def test_a_session_reads_the_api_but_changes_need_the_csrf_header(session_app, admin_token, service):
    with TestClient(session_app) as client:
        csrf = _sign_in(client)
        assert client.get("/api/v1/auth/me").json()["via"] == "session"
        problem(client.delete(f"/api/v1/services/{service}"), 403, "CSRF")
        problem(client.delete(f"/api/v1/services/{service}", headers={auth.CSRF_HEADER: "forged"}), 403, "CSRF")
        assert client.delete(f"/api/v1/services/{service}", headers={auth.CSRF_HEADER: csrf}).status_code == 200


def test_a_form_post_without_a_csrf_token_is_refused(session_app, admin_token):
    with TestClient(session_app) as client:
        client.get("/test/form")
        problem(client.post("/test/signin", json={"username": "admin", "password": ADMIN_PASSWORD}), 403, "CSRF")


def test_a_csrf_token_from_another_browser_is_refused(session_app, admin_token):
    with TestClient(session_app) as one, TestClient(session_app) as two:
        stolen = one.get("/test/form").json()["csrf"]
        two.get("/test/form")
        response = two.post("/test/signin", json={"username": "admin", "password": ADMIN_PASSWORD, "csrf": stolen})
        problem(response, 403, "CSRF")


def test_a_tampered_session_cookie_is_not_signed_in(session_app, admin_token):
    with TestClient(session_app) as client:
        _sign_in(client)
        value = client.cookies.get(auth.SESSION_COOKIE)
        client.cookies.set(auth.SESSION_COOKIE, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])
        problem(client.get("/api/v1/auth/me"), 401)


def test_signing_out_and_resetting_the_password_end_sessions(session_app, admin_token, platform):
    with TestClient(session_app) as client:
        _sign_in(client)
        client.post("/test/signout")
        problem(client.get("/api/v1/auth/me"), 401)
    with TestClient(session_app) as client:
        _sign_in(client)
        users.update_user(platform, "admin", password="a-new-password")
        problem(client.get("/api/v1/auth/me"), 401)


def test_session_keys_differ_from_the_secret_key(portal_app):
    config = portal_app.state.portal.config
    assert auth._derived_key(config, "session") != config.secret_key.encode()
    assert auth._derived_key(config, "session") != auth._derived_key(config, "csrf")
    assert VIEWER_PASSWORD  # imported for the secrets check of the viewer fixture
