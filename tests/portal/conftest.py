"""Fixtures of the portal tests: the app built from the test home's config, and httpx clients.

``admin``, ``viewer`` and ``anon`` are ``TestClient``s (httpx) on one app:
signed in with an admin's token, a viewer's token, or not at all. Every
response any of them gets is checked, when the test ends, for secrets: the test
server's password, the users' passwords and stored token hashes must never
appear in a body or a header.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.engine import make_url

from storekeeper import users
from storekeeper.config import load_config
from storekeeper.platform import Platform
from storekeeper.platform.models import ApiToken
from storekeeper.portal import auth
from storekeeper.portal.app import create_app

with warnings.catch_warnings():
    # Starlette now prefers the httpx2 fork for its TestClient; httpx works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-1"
PROBLEM_JSON = "application/problem+json"


class Responses:
    """Every response the test's clients got, to search for secrets at the end."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def hook(self, response: httpx.Response) -> None:
        response.read()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.seen.append(f"{response.request.method} {response.request.url}\n{headers}\n{response.text}")

    def assert_none_contains(self, secrets: list[str]) -> None:
        for text in self.seen:
            for secret in secrets:
                assert secret not in text, f"a secret appeared in a response:\n{text[:2000]}"


@pytest.fixture
def responses() -> Responses:
    return Responses()


@pytest.fixture
def portal_app(sk_home: Path) -> FastAPI:
    """The portal built from the test home's config."""
    return create_app(load_config())


def _client(app: FastAPI, responses: Responses, token: str | None = None) -> TestClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = TestClient(app, headers=headers)
    client.event_hooks = {"response": [responses.hook]}
    return client


@pytest.fixture
def admin_token(platform: Platform) -> str:
    users.upsert_user(platform, "admin", ADMIN_PASSWORD, role="admin")
    return auth.create_token(platform, "admin", "tests")[1]


@pytest.fixture
def viewer_token(platform: Platform) -> str:
    users.upsert_user(platform, "viewer", VIEWER_PASSWORD, role="viewer")
    return auth.create_token(platform, "viewer", "tests")[1]


@pytest.fixture
def secrets(pg_admin_url: str) -> list[str]:
    """Strings no response may contain."""
    password = make_url(pg_admin_url).password
    assert password
    return [password, ADMIN_PASSWORD, VIEWER_PASSWORD]


@pytest.fixture
def admin(
    portal_app: FastAPI, admin_token: str, responses: Responses, secrets: list[str], platform: Platform
) -> Iterator[TestClient]:
    """A client signed in as an admin (API token)."""
    with _client(portal_app, responses, admin_token) as client:
        yield client
    with platform.session() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    responses.assert_none_contains([*secrets, *hashes])


@pytest.fixture
def viewer(portal_app: FastAPI, viewer_token: str, responses: Responses, secrets: list[str]) -> Iterator[TestClient]:
    """A client signed in as a viewer (API token)."""
    with _client(portal_app, responses, viewer_token) as client:
        yield client
    responses.assert_none_contains(secrets)


@pytest.fixture
def anon(portal_app: FastAPI, responses: Responses, secrets: list[str]) -> Iterator[TestClient]:
    """A client that is not signed in."""
    with _client(portal_app, responses) as client:
        yield client
    responses.assert_none_contains(secrets)


def problem(response: httpx.Response, status: int, *needles: str, hint: bool = True) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status`` whose detail/hint mention ``needles``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    doc = response.json()
    assert doc["status"] == status
    assert doc["type"] and doc["title"] and doc["detail"]
    if hint:
        assert doc.get("hint"), doc
    assert "Traceback" not in response.text
    text = f"{doc['detail']}\n{doc.get('hint', '')}"
    for needle in needles:
        assert needle in text, f"{needle!r} not in {doc}"
    return doc  # type: ignore[no-any-return]


def wait_for_job(client: TestClient, url: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it has finished; return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout}s: {job}"
        time.sleep(0.1)


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
