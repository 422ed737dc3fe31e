"""The app factory: problem documents, the offline docs page, /healthz, headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from storekeeper import services
from storekeeper.config import load_config
from storekeeper.platform.models import Service
from storekeeper.portal.app import create_app
from tests.portal.conftest import PROBLEM_JSON, TestClient, problem


def test_an_unknown_path_is_a_404_problem(anon):
    doc = problem(anon.get("/api/v1/nothing-here"), 404, "/api/v1/nothing-here", "/docs")
    assert doc["type"] == "about:blank"


def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(admin):
    response = admin.put("/api/v1/jobs")
    problem(response, 405, "PUT", "GET")


def test_an_unexpected_error_is_a_500_problem_without_a_traceback(portal_app):
    @portal_app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("internal detail that must stay in the log")

    with TestClient(portal_app, raise_server_exceptions=False) as client:
        response = client.get("/test/boom")
    doc = problem(response, 500, "unexpected", "log")
    assert "internal detail" not in response.text
    assert doc["type"].endswith("internal-error")


def test_storekeeper_errors_carry_type_title_and_named_fields(admin, service):
    doc = problem(admin.put("/api/v1/apps/my_first_app/settings/nope", json={"service": service}), 404)
    assert doc["type"] == "urn:storekeeper:problem:setting-error"
    assert doc["title"] == "Not found"
    assert (doc["app"], doc["setting"]) == ("my_first_app", "nope")


def test_the_docs_page_works_offline_and_lists_every_endpoint(anon, portal_app):
    response = anon.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # Nothing is loaded from elsewhere: no external script, stylesheet or image.
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']https?://""", html)
    assert "<script" not in html
    for path in portal_app.openapi()["paths"]:
        assert path in html, path
    assert "Authorization: Bearer" in html
    assert "ServiceCreate" in html and "write-only" in html


def test_openapi_json_documents_problem_responses_and_the_bearer_scheme(anon):
    spec = anon.get("/openapi.json").json()
    assert spec["info"]["title"] == "storekeeper"
    create = spec["paths"]["/api/v1/services"]["post"]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert create["security"] == [{"token": []}]
    password = spec["components"]["schemas"]["ServiceCreate"]["properties"]["password"]
    assert password.get("writeOnly") is True
    assert "password" not in spec["components"]["schemas"]["ServiceOut"]["properties"]


def test_swagger_and_redoc_from_a_cdn_are_not_served(anon):
    assert anon.get("/redoc").status_code == 404
    assert "cdn" not in anon.get("/docs").text.lower()


def test_responses_carry_security_headers(anon):
    headers = anon.get("/healthz").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"


# -- /healthz -----------------------------------------------------------------------------------


def test_healthz_tells_anyone_only_the_status_and_an_admin_each_check(anon, admin, viewer, service):
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert viewer.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/healthz", headers={"Authorization": "Bearer skt_forged"}).json() == {"status": "ok"}
    health = admin.get("/healthz").json()
    assert health == {
        "status": "ok",
        "platform": {"ok": True, "error": None},
        "services": [{"name": service, "ok": True, "error": None}],
        "findings": health["findings"],  # storekeeper doctor's counts, for admins only
    }
    assert set(health["findings"]) == {"error", "warning", "info"}
    assert health["findings"]["error"] == 0


def test_anonymous_healthz_shows_no_host_port_or_user(anon, admin, platform, service, closed_port, pg_admin_url):
    services.create_service(
        platform, name="down", host="127.0.0.1", port=closed_port, username="someone", password="pw", connect_timeout=2
    )
    response = anon.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "degraded"})
    u = make_url(pg_admin_url)
    for detail in (str(closed_port), "127.0.0.1", "someone", str(u.port), u.username, "down", service):
        assert detail not in response.text
    assert str(closed_port) in admin.get("/healthz").text


def test_healthz_reports_an_unreachable_service_without_credentials(admin, platform, service, closed_port):
    services.create_service(
        platform,
        name="down",
        host="127.0.0.1",
        port=closed_port,
        username="someone",
        password="down-service-password",
        connect_timeout=2,
    )
    response = admin.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "degraded"
    checks = {s["name"]: s for s in health["services"]}
    assert checks[service]["ok"] is True
    assert checks["down"]["ok"] is False
    assert str(closed_port) in checks["down"]["error"]
    assert "down-service-password" not in response.text


def test_healthz_answers_for_a_bad_host_recorded_before_hosts_were_checked(anon, admin, platform, service):
    services.create_service(platform, name="legacy", host="127.0.0.1", username="u", password="p", connect_timeout=2)
    with platform.engine.begin() as conn:  # as an older version, which took any host, would have stored it
        conn.execute(update(Service).where(Service.name == "legacy").values(host="a" * 64 + ".example.com"))
    response = anon.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "degraded"})
    checks = {c["name"]: c for c in admin.get("/healthz").json()["services"]}
    assert checks[service]["ok"] is True
    assert checks["legacy"]["ok"] is False and "bad host name" in checks["legacy"]["error"]
    problem(admin.post("/api/v1/services/legacy/test"), 502, "storekeeper services update legacy")


def test_an_unset_up_platform_database_is_a_503_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path / "unset"))
    with TestClient(create_app(load_config())) as client:
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "down"}
        doc = problem(
            client.get("/api/v1/apps", headers={"Authorization": "Bearer skt_x"}), 503, "storekeeper db configure"
        )
        assert doc["type"].endswith("platform-error")


def test_healthz_shows_no_secret(anon, service, pg_admin_url, portal_app):
    text = anon.get("/healthz").text
    assert make_url(pg_admin_url).password not in text
    assert portal_app.state.portal.config.secret_key not in text
    assert PROBLEM_JSON not in anon.get("/healthz").headers["content-type"]
