"""``/api/v1/auth``: trade a password for an API token; list and revoke tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from storekeeper.portal import auth
from storekeeper.portal.api.models import ID_MAX, Me, TokenCreated, TokenOut, TokenRequest, problem_responses
from storekeeper.portal.deps import CurrentUser, PlatformDep

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token", status_code=status.HTTP_201_CREATED, response_model=TokenCreated, responses=problem_responses(429)
)
def create_token(body: TokenRequest, request: Request, platform: PlatformDep) -> TokenCreated:
    """Sign in with a username and password and get a new API token (shown once).

    ``name`` says what the token is for (listed with it); without it the token is named
    after the client (the User-Agent's first product, e.g. "curl"), or "api". Failed
    sign-ins are throttled per username and client: after 5 in a minute, 429 with Retry-After.
    """
    user = auth.sign_in(platform, body.username, body.password, client=auth.client_address(request))
    name = body.name if body.name is not None else auth.default_token_name(request.headers.get("user-agent"))
    info, token = auth.create_token(platform, user.username, name)
    return TokenCreated(**TokenOut.of(info).model_dump(), token=token)


@router.get("/me", response_model=Me)
def me(user: CurrentUser) -> Me:
    """Return who the request is signed in as."""
    return Me(username=user.username, role=user.role, via=user.via)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(user: CurrentUser, platform: PlatformDep) -> list[TokenOut]:
    """List API tokens: an admin sees everyone's, a viewer their own."""
    return [TokenOut.of(t) for t in auth.list_tokens(platform, None if user.is_admin else user.username)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: Annotated[int, Path(ge=1, le=ID_MAX)], user: CurrentUser, platform: PlatformDep) -> Response:
    """Revoke an API token (idempotent). Anyone may revoke their own tokens; an admin, anyone's."""
    auth.revoke_token(platform, token_id, owner=None if user.is_admin else user.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
