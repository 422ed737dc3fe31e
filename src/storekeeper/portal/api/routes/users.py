"""``/api/v1/users``: portal users (admins only): list, create, change role, disable, reset password."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Response, status

from storekeeper import users
from storekeeper.portal.api.models import UserCreate, UserOut, UserUpdate
from storekeeper.portal.deps import AdminDep, PlatformDep

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=list[UserOut])
def list_users(platform: PlatformDep, _: AdminDep) -> list[UserOut]:
    """List the portal's users."""
    return [UserOut.of(u) for u in users.list_users(platform)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(body: UserCreate, response: Response, platform: PlatformDep, _: AdminDep) -> UserOut:
    """Create a user (a viewer unless role is admin)."""
    info = users.create_user(platform, body.username, body.password, role=body.role)
    response.headers["Location"] = f"/api/v1/users/{quote(info.username, safe='')}"
    return UserOut.of(info)


@router.get("/{username}", response_model=UserOut)
def get_user(username: str, platform: PlatformDep, _: AdminDep) -> UserOut:
    """Show one user."""
    return UserOut.of(users.get_user(platform, username))


@router.patch("/{username}", response_model=UserOut)
def update_user(username: str, body: UserUpdate, platform: PlatformDep, _: AdminDep) -> UserOut:
    """Change a user's role, disable or enable them (active), or reset their password."""
    return UserOut.of(users.update_user(platform, username, **body.model_dump(exclude_unset=True)))
