"""Fixtures of the web admin's tests: browsers-in-a-test-client signed in as an admin, a viewer, or no one.

``admin_web``, ``viewer_web`` and ``anon_web`` are :class:`Web` clients of one
portal that keep cookies like a browser, remember the CSRF token of the last
page they got, and do not follow redirects (tests assert them). Every response
any of them gets is checked, when the test ends, for secrets: the test server's
password, the users' passwords and the stored token hashes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select

from storekeeper import users
from storekeeper.platform import Platform
from storekeeper.platform.models import ApiToken
from storekeeper.portal.ui.main import PAGE_ROUTERS, PREFIX, ui_router
from tests.portal.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, Responses, TestClient

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Values for the path parameters of the admin's routes.
SAMPLE = {"package": "my_first_app", "setting": "example_db", "name": "local", "username": "viewer", "token_id": "1"}


def text(response: httpx.Response) -> str:
    """The page's HTML with entities decoded, to search for messages that quote names."""
    return html.unescape(response.text)


class Web:
    """A test client used like a browser: cookies kept, CSRF token taken from the last page."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf: str | None = None

    def _remember(self, response: httpx.Response) -> httpx.Response:
        found = CSRF_RE.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._remember(self.client.get(path, **kwargs))

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        """Post a form, with the CSRF token of the last page (fetching a page first when there was none)."""
        form = dict(data or {})
        if csrf:
            if self.csrf is None:
                self.get("/admin/login")
            form.setdefault("csrf_token", self.csrf or "")
        return self._remember(self.client.post(path, data=form))

    def follow(self, response: httpx.Response) -> httpx.Response:
        """GET the page a redirect points at."""
        assert response.status_code in (302, 303, 307), f"{response.status_code}: {response.text[:500]}"
        return self.get(response.headers["location"])

    def sign_in(self, username: str, password: str) -> httpx.Response:
        self.get("/admin/login")
        response = self.post("/admin/login", {"username": username, "password": password})
        assert response.status_code == 303, response.text[:2000]
        return response


def admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the web admin, path parameters filled in (the catch-all 404 left out)."""
    routes = [(PREFIX + r.path, r) for router in PAGE_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    routes += [(r.path, r) for r in ui_router.routes if isinstance(r, APIRoute) and "{path:path}" not in r.path]
    found = []
    for path, route in routes:
        for key, value in SAMPLE.items():
            path = path.replace("{" + key + "}", value)
        found += [(method, path) for method in sorted(route.methods)]
    return found


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash passwords with argon2 at its lowest cost: these tests sign in often, and check pages, not hashes."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def _web(app: FastAPI, responses: Responses) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    client.event_hooks = {"response": [responses.hook]}
    return client


@pytest.fixture
def admin_user(platform: Platform) -> str:
    users.upsert_user(platform, "admin", ADMIN_PASSWORD, role="admin")
    return "admin"


@pytest.fixture
def viewer_user(platform: Platform) -> str:
    users.upsert_user(platform, "viewer", VIEWER_PASSWORD, role="viewer")
    return "viewer"


@pytest.fixture
def anon_web(portal_app: FastAPI, responses: Responses, secrets: list[str], platform: Platform) -> Iterator[Web]:
    """A browser that is not signed in."""
    with _web(portal_app, responses) as client:
        yield Web(client)
    with platform.session() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    responses.assert_none_contains([*secrets, *hashes])


@pytest.fixture
def admin_web(anon_web: Web, admin_user: str) -> Web:
    """A browser signed in as an admin."""
    anon_web.sign_in(admin_user, ADMIN_PASSWORD)
    return anon_web


@pytest.fixture
def viewer_web(portal_app: FastAPI, responses: Responses, secrets: list[str], viewer_user: str) -> Iterator[Web]:
    """A browser signed in as a viewer."""
    with _web(portal_app, responses) as client:
        web = Web(client)
        web.sign_in(viewer_user, VIEWER_PASSWORD)
        yield web
    responses.assert_none_contains(secrets)
