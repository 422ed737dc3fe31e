"""The services pages: add, edit (password write-only), test the connection, delete (refused while assigned)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from storekeeper import services
from tests.portal.ui.conftest import text


def _form(url: str, **changes: str) -> dict[str, str]:
    u = make_url(url)
    form = {
        "name": "pg2",
        "host": u.host or "127.0.0.1",
        "port": str(u.port or 5432),
        "username": u.username or "",
        "password": u.password or "",
        "maintenance_db": "postgres",
        "sslmode": "",
        "connect_timeout": "5",
        "pool_size": "2",
    }
    form.update(changes)
    return form


def test_adding_a_service_stores_it_and_opens_its_page(admin_web, pg_admin_url, platform):
    admin_web.get("/admin/services/new")
    response = admin_web.post("/admin/services/new", _form(pg_admin_url))
    assert response.headers["location"] == "/admin/services/pg2"
    page = admin_web.follow(response)
    assert 'Service "pg2" added' in text(page)
    info = services.get_service(platform, "pg2")
    assert info.has_password and info.pool_size == 2 and info.connect_timeout == 5


def test_a_refused_service_shows_the_form_again_with_the_reason(admin_web, pg_admin_url, service):
    admin_web.get("/admin/services/new")
    response = admin_web.post("/admin/services/new", _form(pg_admin_url, name=service, host="other.example"))
    assert response.status_code == 409
    assert f'Service "{service}" already exists' in text(response) and "Fix" in response.text
    assert 'value="other.example"' in text(response)  # what was typed is kept, but for the password


def test_a_bad_number_names_the_field(admin_web, pg_admin_url):
    admin_web.get("/admin/services/new")
    response = admin_web.post("/admin/services/new", _form(pg_admin_url, port="54x"))
    assert response.status_code == 400
    assert "Port must be a whole number" in response.text


def test_saving_with_a_blank_password_keeps_the_stored_one(admin_web, service, platform, pg_admin_url):
    admin_web.get(f"/admin/services/{service}")
    response = admin_web.post(f"/admin/services/{service}", _form(pg_admin_url, password="", pool_size="7"))
    assert response.status_code == 303
    assert services.get_service(platform, service).pool_size == 7
    report = services.test_service(platform, service)  # still connects: the password was kept
    assert report["server_version"]


def test_choosing_no_sslmode_on_the_edit_form_clears_it(admin_web, service, platform, pg_admin_url):
    services.update_service(platform, service, sslmode="prefer")
    admin_web.get(f"/admin/services/{service}")
    response = admin_web.post(f"/admin/services/{service}", _form(pg_admin_url, password="", sslmode=""))
    assert response.status_code in (200, 303), response.text
    assert services.get_service(platform, service).sslmode is None
    kept = admin_web.post(f"/admin/services/{service}", _form(pg_admin_url, password="", sslmode="require"))
    assert kept.status_code in (200, 303) and services.get_service(platform, service).sslmode == "require"


def test_testing_a_service_shows_version_privileges_and_postgis(admin_web, service):
    admin_web.get(f"/admin/services/{service}")
    response = admin_web.post(f"/admin/services/{service}/test")
    assert response.status_code == 200
    for needle in ("Connection works", "PostgreSQL", "Superuser", "Can create databases", "PostGIS available"):
        assert needle in response.text
    assert "Spatial stores get PostGIS" in response.text and 'id="postgis-path"' in response.text


def test_testing_an_unreachable_service_shows_why(admin_web, platform, closed_port):
    services.create_service(
        platform, name="down", host="127.0.0.1", port=closed_port, username="x", password="y", connect_timeout=2
    )
    admin_web.get("/admin/services/down")
    response = admin_web.post("/admin/services/down/test")
    assert response.status_code == 502
    assert 'class="alert alert-error"' in text(response) and "Fix" in response.text


def test_deleting_an_assigned_service_is_refused_with_the_reason(admin_web, my_first_app, service, platform):
    admin_web.get(f"/admin/services/{service}")
    response = admin_web.post(f"/admin/services/{service}/delete")
    assert response.status_code == 409
    assert "is assigned to" in response.text and "my_first_app/example_db" in response.text
    assert services.get_service(platform, service)


def test_deleting_an_unused_service_removes_it(admin_web, service, platform):
    admin_web.get(f"/admin/services/{service}")
    response = admin_web.post(f"/admin/services/{service}/delete")
    assert response.headers["location"] == "/admin/services"
    assert f'Service "{service}" deleted' in text(admin_web.follow(response))
    assert services.list_services(platform) == []


def test_a_host_with_a_64_character_label_is_refused_on_the_form(admin_web, pg_admin_url, platform, service):
    long_label = "a" * 64 + ".example.com"
    admin_web.get("/admin/services/new")
    response = admin_web.post("/admin/services/new", _form(pg_admin_url, host=long_label))
    assert response.status_code == 422
    assert "is not a hostname or an IP address" in text(response) and "63 at most" in text(response)
    assert [s.name for s in services.list_services(platform)] == [service]
    admin_web.get(f"/admin/services/{service}")
    edited = admin_web.post(f"/admin/services/{service}", _form(pg_admin_url, host=long_label))
    assert edited.status_code == 422 and "63 at most" in text(edited)
    assert services.get_service(platform, service).host == make_url(pg_admin_url).host
