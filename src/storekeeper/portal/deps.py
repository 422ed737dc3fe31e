"""What routes ask for, as ``Annotated`` aliases: ``PlatformDep``, ``CurrentUser``, ``AdminDep``.

Example::

    @router.post("", status_code=201)
    def create_service(body: ServiceCreate, platform: PlatformDep, _: AdminDep) -> ServiceOut:
        return ServiceOut.of(services.create_service(platform, **body.model_dump()))

``CurrentUser`` accepts an API token (``Authorization: Bearer``) or the web
admin's session cookie; with the cookie, a state-changing request must also
carry the CSRF token in ``X-CSRF-Token``. It also attributes the request's
audit events to that user. ``AdminDep`` refuses viewers with 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from storekeeper import audit
from storekeeper.errors import PortalError
from storekeeper.platform import Platform
from storekeeper.portal import auth
from storekeeper.portal.state import PortalState

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from POST /api/v1/auth/token, sent as: Authorization: Bearer TOKEN",
)


def get_portal(request: Request) -> PortalState:
    return request.app.state.portal


def get_platform(request: Request) -> Platform:
    """Return the portal's platform (503 naming the fix when its database is not set up)."""
    return get_portal(request).platform()


PortalDep = Annotated[PortalState, Depends(get_portal)]
PlatformDep = Annotated[Platform, Depends(get_platform)]


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> auth.Principal:
    """Return who makes the request (bearer token or session cookie); raise 401/429 when nobody is signed in."""
    platform = get_platform(request)
    if credentials is not None:
        principal = auth.authenticate_token(platform, credentials.credentials)
        if principal is None:
            raise PortalError.unauthenticated(
                "The API token is not valid: it is unknown, revoked, or its user is disabled."
            )
        return principal
    principal = auth.session_principal(request, platform)
    if principal is None:
        raise PortalError.unauthenticated()
    # A cookie rides along on cross-site requests; a CSRF token does not.
    auth.require_csrf(request, request.headers.get(auth.CSRF_HEADER))
    return principal


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> AsyncIterator[auth.Principal]:
    """Return the signed-in user (401 otherwise) and attribute the request's audit events to them.

    A bearer token checked in the last ``portal.token_cache_seconds`` is answered on the
    event loop from the process's cache; anything else is checked on the platform database
    in a worker thread, one check per token at a time (:meth:`auth.TokenCache.claim`).
    """
    principal: auth.Principal | None = None
    if credentials is None:
        principal = await run_in_threadpool(authenticate, request, credentials)
    else:
        tokens = get_portal(request).tokens
        token = credentials.credentials
        principal = tokens.get(token) or tokens.claim(token)
        if principal is None:
            try:
                principal = await run_in_threadpool(authenticate, request, credentials)
            finally:
                tokens.release(token, principal)
    # Entered here, in the request's own task, so the endpoint (run in a worker thread
    # with a copy of this context) and anything it calls see the actor.
    with audit.acting_as(principal.actor):
        yield principal


CurrentUser = Annotated[auth.Principal, Depends(current_user)]


def admin_user(request: Request, user: CurrentUser) -> auth.Principal:
    """Return the signed-in user when they are an admin; 403 for a viewer."""
    if not user.is_admin:
        raise PortalError.forbidden(user.username, f"{request.method} {request.url.path}")
    return user


AdminDep = Annotated[auth.Principal, Depends(admin_user)]
