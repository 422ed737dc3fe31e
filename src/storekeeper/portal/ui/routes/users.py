"""``/admin/users``: portal users (add, disable, reset password, change role) and API tokens.

A new API token is shown once, on the page answering the form that created it;
only its first characters are listed afterwards.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from storekeeper import users
from storekeeper.errors import StorekeeperError
from storekeeper.platform import Platform
from storekeeper.portal import auth
from storekeeper.portal.deps import PlatformDep
from storekeeper.portal.ui.deps import AdminForm, PageUser
from storekeeper.portal.ui.pages import PREFIX, PageRoute, redirect, render

router = APIRouter(prefix="/users", route_class=PageRoute)
HERE = f"{PREFIX}/users"


def _users_page(
    request: Request,
    platform: Platform,
    user: auth.Principal,
    *,
    status: int = 200,
    error: StorekeeperError | None = None,
    new_token: str | None = None,
    new_token_name: str = "",
) -> HTMLResponse:
    people = users.list_users(platform) if user.is_admin else []
    tokens = auth.list_tokens(platform, None if user.is_admin else user.username)
    return render(
        request,
        "users.html",
        status=status,
        section="users",
        users=people,
        tokens=tokens,
        error=error,
        new_token=new_token,
        new_token_name=new_token_name,
        roles=users.ROLES,
        min_password=users.MIN_PASSWORD_LENGTH,
    )


@router.get("")
def list_users(request: Request, platform: PlatformDep, user: PageUser) -> HTMLResponse:
    """List users (admins) and API tokens (an admin sees everyone's, a viewer their own)."""
    return _users_page(request, platform, user)


@router.post("")
def create_user(request: Request, platform: PlatformDep, user: PageUser, form: AdminForm) -> Response:
    """Add a user: an admin or a read-only viewer."""
    username = form.get("username", "").strip()
    try:
        users.create_user(platform, username, form.get("password", ""), role=form.get("role", "viewer"))
    except StorekeeperError as err:
        return _users_page(request, platform, user, status=err.status, error=err)
    return redirect(request, HERE, f'User "{username}" added.')


@router.post("/{username}/active")
def set_active(username: str, request: Request, platform: PlatformDep, user: PageUser, form: AdminForm) -> Response:
    """Disable or enable a user (a disabled user's sessions and tokens stop working)."""
    active = form.get("active") == "1"
    try:
        users.update_user(platform, username, active=active)
    except StorekeeperError as err:
        return _users_page(request, platform, user, status=err.status, error=err)
    return redirect(request, HERE, f'User "{username}" {"enabled" if active else "disabled"}.')


@router.post("/{username}/role")
def set_role(username: str, request: Request, platform: PlatformDep, user: PageUser, form: AdminForm) -> Response:
    """Make a user an admin or a viewer."""
    role = form.get("role", "")
    try:
        users.update_user(platform, username, role=role)
    except StorekeeperError as err:
        return _users_page(request, platform, user, status=err.status, error=err)
    return redirect(request, HERE, f'User "{username}" is now a{"n" if role == "admin" else ""} {role}.')


@router.post("/{username}/password")
def reset_password(username: str, request: Request, platform: PlatformDep, user: PageUser, form: AdminForm) -> Response:
    """Set a new password (the user's open sessions end)."""
    try:
        users.update_user(platform, username, password=form.get("password", ""))
    except StorekeeperError as err:
        return _users_page(request, platform, user, status=err.status, error=err)
    return redirect(request, HERE, f'Password of "{username}" reset; their open sessions have ended.')


@router.post("/tokens")
def create_token(request: Request, platform: PlatformDep, user: PageUser, form: AdminForm) -> Response:
    """Create an API token for yourself and show it, this once."""
    name = form.get("name", "").strip()
    try:
        info, token = auth.create_token(platform, user.username, name)
    except StorekeeperError as err:
        return _users_page(request, platform, user, status=err.status, error=err)
    return _users_page(request, platform, user, status=201, new_token=token, new_token_name=info.name)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: int, request: Request, platform: PlatformDep, user: PageUser, form: AdminForm) -> Response:
    """Revoke an API token."""
    try:
        info = auth.revoke_token(platform, token_id)
    except StorekeeperError as err:
        return _users_page(request, platform, user, status=err.status, error=err)
    return redirect(request, HERE, f'Token "{info.name}" of {info.username} revoked.')
