"""Body limit and proxy headers, in the portal built in this process.

(``test_served_limits.py`` checks the same against a real ``storekeeper start``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storekeeper import users
from storekeeper.config import load_config
from storekeeper.portal.app import create_app
from tests.portal.conftest import ADMIN_PASSWORD, TestClient, problem

MIB = 1024 * 1024


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def _too_large(response, limit: int = MIB) -> None:
    doc = problem(response, 413, f"({limit} bytes)", "portal.max_body_bytes")
    assert doc["type"] == "urn:storekeeper:problem:portal-error"


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/token", "/api/v1/users", "/admin/login", "/apps/links/links", "/no/such/page"]
)
def test_a_body_over_the_limit_is_a_413_problem_document_on_every_route(anon, path):
    _too_large(anon.post(path, content=b"x" * (MIB + 1), headers={"Content-Type": "application/json"}))


def test_a_chunked_body_without_content_length_is_counted_as_it_streams(anon):
    response = anon.post("/api/v1/auth/token", content=_chunks(3 * MIB), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _too_large(response)


def test_a_chunked_form_over_the_limit_is_refused_by_the_web_admin(anon):
    response = anon.post(
        "/admin/login", content=_chunks(2 * MIB), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _too_large(response)


def test_a_body_within_the_limit_is_read_as_usual(anon, platform):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD)
    body = b'{"username": "admin", "password": "' + ADMIN_PASSWORD.encode() + b'", "name": "' + b"n" * 50 + b'"}'
    assert (
        anon.post("/api/v1/auth/token", content=body, headers={"Content-Type": "application/json"}).status_code == 201
    )
    padded = b'{"username": "admin", "password": "wrong", "pad": "' + b"p" * (MIB - 100) + b'"}'
    assert len(padded) <= MIB
    assert (
        anon.post("/api/v1/auth/token", content=padded, headers={"Content-Type": "application/json"}).status_code == 422
    )


def test_the_limit_comes_from_portal_max_body_bytes(sk_home: Path, monkeypatch):
    monkeypatch.setenv("STOREKEEPER_PORTAL_MAX_BODY_BYTES", "1000")
    with TestClient(create_app(load_config())) as client:
        _too_large(client.post("/api/v1/auth/token", content=_chunks(1001, 100)), 1000)
        assert client.post("/api/v1/auth/token", content=_chunks(1000, 100)).status_code == 422


# -- proxy headers ----------------------------------------------------------------------------


def _sign_in_fails(client: TestClient, forwarded_for: str) -> int:
    return client.post(
        "/api/v1/auth/token",
        json={"username": "admin", "password": "wrong-password"},
        headers={"X-Forwarded-For": forwarded_for},
    ).status_code


def test_forwarded_for_is_ignored_by_default(platform, anon):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD)
    codes = [_sign_in_fails(anon, f"203.0.113.{n}") for n in range(8)]
    assert codes == [401] * 5 + [429] * 3


def test_forwarded_for_is_believed_from_a_listed_proxy(sk_home: Path, platform, monkeypatch):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD)
    # The test client connects as "testclient": list it as the proxy.
    monkeypatch.setenv("STOREKEEPER_PORTAL_FORWARDED_ALLOW_IPS", "testclient")
    with pytest.raises(Exception, match="forwarded_allow_ips"):
        load_config()
    monkeypatch.setenv("STOREKEEPER_PORTAL_FORWARDED_ALLOW_IPS", "*")
    with TestClient(create_app(load_config())) as client:
        assert [_sign_in_fails(client, f"203.0.113.{n}") for n in range(8)] == [401] * 8  # a counter each
        assert [_sign_in_fails(client, "198.51.100.7") for _ in range(6)] == [401] * 5 + [429]
