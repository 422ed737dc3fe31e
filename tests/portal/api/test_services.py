"""``/api/v1/services``: register, show, change, test and remove services over HTTP."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tests.portal.conftest import problem


def _body(pg_admin_url: str, name: str = "pg2", **extra: object) -> dict[str, object]:
    u = make_url(pg_admin_url)
    return {"name": name, "host": u.host, "port": u.port, "username": u.username, "password": u.password, **extra}


def test_list_shows_services_without_their_passwords(admin, service):
    response = admin.get("/api/v1/services")
    assert response.status_code == 200
    [svc] = response.json()
    assert svc["name"] == service
    assert svc["has_password"] is True
    assert "password" not in svc
    assert ":***@" in svc["url"]


def test_create_answers_201_with_location_and_no_password(admin, platform, pg_admin_url):
    response = admin.post("/api/v1/services", json=_body(pg_admin_url, pool_size=2))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/services/pg2"
    assert response.json()["pool_size"] == 2
    assert "password" not in response.json()
    assert admin.get("/api/v1/services/pg2").json()["name"] == "pg2"


def test_create_an_existing_name_is_refused_naming_the_service(admin, service, pg_admin_url):
    doc = problem(
        admin.post("/api/v1/services", json=_body(pg_admin_url, name=service)), 409, f'"{service}" already exists'
    )
    assert doc["service"] == service


def test_create_with_a_bad_port_is_a_422_listing_the_field_without_echoing_values(admin, pg_admin_url):
    doc = problem(admin.post("/api/v1/services", json=_body(pg_admin_url, port=70000)), 422, "port")
    assert [e["field"] for e in doc["errors"]] == ["body.port"]
    assert "input" not in doc["errors"][0]


def test_create_with_a_missing_field_does_not_echo_the_body(admin, pg_admin_url):
    body = _body(pg_admin_url)
    del body["host"]
    doc = problem(admin.post("/api/v1/services", json=body), 422, "host")
    # pydantic's errors carry the whole body as "input" (the password too): none reaches the answer.
    assert all("input" not in error for error in doc["errors"])
    assert body["password"] not in str(doc)


def test_create_with_a_bad_name_states_the_rule(admin, pg_admin_url):
    problem(admin.post("/api/v1/services", json=_body(pg_admin_url, name="bad name!")), 422, "bad name!")


def test_malformed_json_is_a_422_problem(admin):
    response = admin.post("/api/v1/services", content=b"{not json", headers={"Content-Type": "application/json"})
    problem(response, 422)


def test_show_an_unknown_service_is_a_404_naming_it_and_the_fix(admin):
    doc = problem(admin.get("/api/v1/services/nope"), 404, '"nope"', "storekeeper services list")
    assert doc["service"] == "nope"
    assert doc["instance"] == "/api/v1/services/nope"


def test_update_changes_only_the_fields_sent(admin, service):
    response = admin.patch(f"/api/v1/services/{service}", json={"pool_size": 7})
    assert response.status_code == 200, response.text
    assert response.json()["pool_size"] == 7
    assert response.json()["has_password"] is True


def test_update_can_replace_the_password_without_showing_it(admin, service, pg_admin_url):
    password = make_url(pg_admin_url).password
    response = admin.patch(f"/api/v1/services/{service}", json={"password": password})
    assert response.status_code == 200
    assert admin.post(f"/api/v1/services/{service}/test").status_code == 200


def test_update_an_unknown_field_is_a_422(admin, service):
    problem(admin.patch(f"/api/v1/services/{service}", json={"name": "renamed"}), 422, "name")


def test_test_reports_version_privileges_and_postgis(admin, service):
    response = admin.post(f"/api/v1/services/{service}/test")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["service"] == service
    assert report["superuser"] is True
    assert report["server_version"]
    assert "postgis_available" in report
    assert report["postgis_path"] in ("direct", "none") and report["postgis_template"] == "absent"


def test_test_an_unreachable_service_names_it_and_the_fix(admin, platform, closed_port):
    from storekeeper import services

    services.create_service(
        platform,
        name="down",
        host="127.0.0.1",
        port=closed_port,
        username="u",
        password="down-secret-pw",
        connect_timeout=2,
    )
    doc = problem(admin.post("/api/v1/services/down/test"), 502, '"down"', "storekeeper services")
    assert "down-secret-pw" not in str(doc)


def test_remove_is_refused_while_assigned_naming_the_settings(admin, my_first_app, service):
    doc = problem(admin.delete(f"/api/v1/services/{service}"), 409, "my_first_app/example_db", "--force")
    assert doc["service"] == service


def test_remove_with_force_unassigns_the_settings(admin, my_first_app, service):
    response = admin.delete(f"/api/v1/services/{service}", params={"force": "true"})
    assert response.status_code == 200, response.text
    assert "my_first_app/example_db" in response.json()["unassigned"]
    problem(admin.get(f"/api/v1/services/{service}"), 404)


def test_remove_an_unused_service(admin, service):
    assert admin.delete(f"/api/v1/services/{service}").json() == {"service": service, "unassigned": []}
    assert admin.get("/api/v1/services").json() == []


LONG_LABEL_HOST = "a" * 64 + ".example.com"
BAD_HOSTS = [
    LONG_LABEL_HOST,
    "a" * 254,
    "db..example.com",
    "-db.example.com",
    "db_1.example.com",
    "db example.com",
    "db\x00.example.com",
    "d\u0431.example.com",
    "999.1.1.1",
    "[::1]",
    "::g",
    "",
]


def test_a_host_that_is_neither_a_hostname_nor_an_ip_address_is_a_422(admin, platform, service, pg_admin_url):
    for host in BAD_HOSTS:
        doc = problem(admin.post("/api/v1/services", json=_body(pg_admin_url, host=host)), 422)
        assert "hostname or an IP address" in doc["detail"] or doc["type"].endswith("validation-error"), (host, doc)
        changed = admin.patch(f"/api/v1/services/{service}", json={"host": host})
        assert changed.status_code == 422, (host, changed.text)
    doc = problem(admin.post("/api/v1/services", json=_body(pg_admin_url, host=LONG_LABEL_HOST)), 422, "63 at most")
    assert doc["hint"]
    assert [s["name"] for s in admin.get("/api/v1/services").json()] == [service]
    assert admin.get(f"/api/v1/services/{service}").json()["host"] == make_url(pg_admin_url).host


def test_hostnames_and_ip_addresses_are_accepted(admin, pg_admin_url):
    for n, host in enumerate(
        ["localhost", "db-1.example.com", "db.example.com.", "10.0.0.5", "::1", "fe80::1", "a" * 63]
    ):
        response = admin.post("/api/v1/services", json=_body(pg_admin_url, name=f"ok{n}", host=host))
        assert response.status_code == 201, (host, response.text)
        assert response.json()["host"] == host
