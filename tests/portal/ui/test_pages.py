"""Each page of the web admin renders, offline, with the signed-in user and no secret."""

from __future__ import annotations

import re

import pytest

from storekeeper import apps
from storekeeper.config import load_config
from storekeeper.portal.app import create_app
from tests.portal.conftest import TestClient
from tests.portal.ui.conftest import Web, text


def _page(web: Web, path: str, *needles: str, status: int = 200) -> str:
    response = web.get(path)
    assert response.status_code == status, f"{path}: {response.status_code}\n{response.text[:2000]}"
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "Traceback" not in html
    for needle in needles:
        assert needle in html, f"{needle!r} not on {path}"
    return html


def test_every_page_loads_only_the_portals_own_css_and_js(admin_web, service):
    html = _page(admin_web, "/admin/", "My First App")
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "/admin/static/admin.css" in html and "/admin/static/admin.js" in html
    assert admin_web.get("/admin/static/admin.css").status_code == 200
    assert admin_web.get("/admin/static/admin.js").status_code == 200


def test_pages_forbid_inline_scripts_and_framing(admin_web):
    response = admin_web.get("/admin/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text


def test_home_lists_apps_with_their_state(admin_web, my_first_app):
    html = _page(admin_web, "/admin/", "My First App", "my_first_app", "configured", "stores not ready")
    assert 'href="/admin/apps/my_first_app"' in html


def test_home_shows_an_admin_doctors_findings_with_their_fixes_and_a_viewer_none(admin_web, viewer_web, my_first_app):
    html = _page(admin_web, "/admin/", "Health check", "SUPERUSER", "storekeeper services prepare-postgis local")
    assert "0 error(s)" in html
    viewer_html = _page(viewer_web, "/admin/", "My First App")
    assert "Health check" not in viewer_html and "prepare-postgis" not in viewer_html


def test_home_without_services_points_to_adding_one(admin_web):
    _page(admin_web, "/admin/", "No service yet", "/admin/services/new", "not configured")


def test_services_page_lists_services_and_what_uses_them(admin_web, my_first_app, service):
    _page(admin_web, "/admin/services", service, "my_first_app/example_db", "stored")


def test_service_page_shows_an_edit_form_with_an_empty_password_field(admin_web, service):
    html = _page(admin_web, f"/admin/services/{service}", "Test connection", "leave blank to keep")
    field = re.search(r'<input id="svc-password"[^>]*>', html)
    assert field and 'value=""' in field.group(0)


def test_new_service_page_has_a_label_for_every_field(admin_web):
    html = _page(admin_web, "/admin/services/new", "Add a service")
    ids = re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', html))
    assert ids and set(ids) <= labelled


def test_app_page_shows_settings_services_and_store_state(admin_web, my_first_app, service):
    html = _page(
        admin_web,
        "/admin/apps/my_first_app",
        "example_db",
        "spatial_db",
        "primary",
        "creator",
        "model.<wbr>init_example_db",
        "Sync stores",
        "Dynamic stores",
        "absent",
    )
    assert f'<option value="{service}" selected>' in html
    assert "connection only" in html


def test_every_form_field_on_the_app_page_has_a_label(admin_web, my_first_app):
    html = _page(admin_web, "/admin/apps/my_first_app")
    ids = re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', html))
    assert ids and set(ids) <= labelled
    # Checkboxes are wrapped in their label instead.
    assert html.count('type="checkbox"') == html.count('<label class="check"><input type="checkbox"')


def test_an_unknown_app_is_a_404_page_naming_it(admin_web):
    _page(admin_web, "/admin/apps/no_such_app", "no_such_app", "Fix", status=404)


def test_an_unknown_service_is_a_404_page(admin_web):
    _page(admin_web, "/admin/services/nope", "nope", status=404)


def test_an_unknown_admin_address_is_a_404_page(admin_web):
    _page(admin_web, "/admin/nothing/here", "There is no page at /admin/nothing/here", status=404)


def test_users_page_lists_users_and_tokens(admin_web, viewer_user):
    _page(admin_web, "/admin/users", "Add user", "viewer", "API tokens", "Create token")


def test_audit_page_lists_events_and_filters_them(admin_web, service):
    html = _page(admin_web, "/admin/audit", "service.create", "user.sign_in")
    filtered = _page(admin_web, "/admin/audit?action=service.create", "service.create")
    assert filtered.count('class="tag"') == 1 < html.count('class="tag"')
    _page(admin_web, "/admin/audit?target=zzz", "No events match these filters")


def test_drop_page_asks_for_confirmation(admin_web, my_first_app, platform):
    from storekeeper import stores

    stores.create_store(platform, "my_first_app", "scratch", "primary")
    html = _page(admin_web, "/admin/apps/my_first_app/stores/scratch/drop", "Drop store", "cannot be undone")
    assert 'action="/admin/apps/my_first_app/stores/scratch/drop"' in html
    _page(admin_web, "/admin/apps/my_first_app", "scratch")


def test_the_root_and_bare_admin_address_lead_to_the_home_page(anon_web):
    assert anon_web.get("/").headers["location"] == "/admin/"
    assert anon_web.get("/admin").headers["location"] == "/admin/"


def test_the_login_page_renders_without_a_session(anon_web):
    html = _page(anon_web, "/admin/login", "Sign in", 'autocomplete="current-password"')
    assert 'class="sidebar"' not in html


@pytest.mark.parametrize("page", ["/admin/", "/admin/services", "/admin/users", "/admin/audit"])
def test_the_current_section_is_marked_in_the_menu(admin_web, page):
    html = _page(admin_web, page)
    assert len(re.findall(r'aria-current="page"', html)) >= 1
    marked = re.search(r'<a href="([^"]+)" aria-current="page">', html)
    assert marked and marked.group(1) == page


def test_viewer_sees_pages_read_only(viewer_web, my_first_app):
    html = _page(viewer_web, "/admin/apps/my_first_app", "viewer")
    assert "<fieldset disabled>" in html
    _page(viewer_web, "/admin/users", "API tokens")


def test_assigning_through_the_core_shows_on_the_page(admin_web, service):
    apps.assign_service(admin_web.client.app.state.portal.platform(), "my_first_app", "temp_db", service)
    html = _page(admin_web, "/admin/apps/my_first_app")
    assert re.search(r'id="service-temp_db".*?<option value="local" selected>', html, re.DOTALL)


def test_an_unexpected_error_is_a_500_page_without_details(admin_web, monkeypatch):
    def boom(platform):
        raise RuntimeError("internal detail that must stay in the log")

    monkeypatch.setattr(apps, "list_apps", boom)
    html = _page(admin_web, "/admin/", "unexpected error", "log", status=500)
    assert "internal detail" not in html and "RuntimeError" not in html


def test_a_platform_that_is_not_set_up_is_a_page_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("STOREKEEPER_HOME", str(tmp_path / "unset"))
    with TestClient(create_app(load_config()), follow_redirects=False) as client:
        for path in ("/admin/login", "/admin/"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert response.headers["content-type"].startswith("text/html")
            assert "storekeeper db configure" in text(response)


def test_admin_rotates_an_apps_store_passwords_from_its_page(admin_web, my_first_app, platform):
    from storekeeper import stores

    stores.sync_stores(platform, ["my_first_app"], database="example_db")
    before = my_first_app.get_persistent_store_database("example_db", as_url=True)
    html = _page(admin_web, "/admin/apps/my_first_app", "Rotate store passwords", "own role")
    assert 'action="/admin/apps/my_first_app/rotate-credentials"' in html
    done = admin_web.follow(admin_web.post("/admin/apps/my_first_app/rotate-credentials"))
    assert "New passwords for: example_db." in done.text
    from storekeeper import engines

    engines.clear()
    after = my_first_app.get_persistent_store_database("example_db", as_url=True)
    assert after.username == before.username and after.password != before.password
    assert before.password not in done.text and after.password not in done.text


def test_a_viewer_cannot_rotate_store_passwords(viewer_web, my_first_app, platform):
    response = viewer_web.post("/admin/apps/my_first_app/rotate-credentials")
    assert response.status_code == 403
