"""A pytest fixture factory for calling an app's own endpoints through the portal.

``portal_client()`` returns a fixture yielding a :class:`PortalClient`: an
httpx-based ``TestClient`` on the real portal app (``create_app``), running in
testing mode, so the app's routes resolve to the test copies that
``persistent_store`` fixtures made. Use both together::

    from storekeeper.testing import persistent_store, portal_client

    primary_db = persistent_store("links", "primary_db")
    client = portal_client()

    def test_post_needs_a_token(primary_db, client):
        assert client.post("/apps/links/links", json={"url": "https://a.example"}).status_code == 401
        response = client.post("/apps/links/links", json={"url": "https://a.example"},
                               headers=client.token_headers())
        assert response.status_code == 201

``token_headers(role="admin")`` gives an ``Authorization`` header with a
bearer token that this client's portal accepts for a test user of that role
(``admin`` or ``viewer``). The token exists only in the test process: nothing
is written to the platform database. Requests without it, or with any other
token, go through the portal's real authentication.
"""

import secrets
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from storekeeper.testing.fixtures import testing_mode

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note preferring another httpx fork
    from fastapi.testclient import TestClient

ROLES = ("admin", "viewer")


class PortalClient(TestClient):
    """A TestClient on the portal app that can mint test-only bearer tokens."""

    def __init__(self, app: Any, tokens: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._tokens = tokens

    def token_headers(self, role: str = "admin") -> dict[str, str]:
        """Return ``{"Authorization": "Bearer …"}`` for a test user with ``role`` (admin or viewer)."""
        from storekeeper.portal import auth

        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        for token, principal in self._tokens.items():
            if principal.role == role:
                return {"Authorization": f"Bearer {token}"}
        token = "skt_test_" + secrets.token_urlsafe(24)
        self._tokens[token] = auth.Principal(username=f"test-{role}", role=role, via="token")
        return {"Authorization": f"Bearer {token}"}


def _build_client() -> Iterator[PortalClient]:
    from storekeeper import audit
    from storekeeper.config import load_config
    from storekeeper.portal import deps
    from storekeeper.portal.app import create_app

    tokens: dict[str, Any] = {}

    async def current_user(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(deps.bearer_scheme)],
    ) -> AsyncIterator[Any]:
        principal: Any = tokens.get(credentials.credentials) if credentials is not None else None
        if principal is None:  # not a test token: the portal's real check (401/403 as usual)
            principal = await run_in_threadpool(deps.authenticate, request, credentials)
        with audit.acting_as(principal.actor):
            yield principal

    with testing_mode():
        app = create_app(load_config())
        app.dependency_overrides[deps.current_user] = current_user
        with PortalClient(app, tokens) as client:
            yield client


def portal_client(*, scope: str = "function") -> Callable[..., Any]:
    """Return a fixture yielding a :class:`PortalClient` on the portal, in testing mode."""

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def client_fixture() -> Iterator[PortalClient]:
        yield from _build_client()

    client_fixture.__doc__ = "A TestClient on the portal in testing mode; token_headers() signs requests in."
    return client_fixture
