"""Portal users: admins and read-only viewers, passwords hashed with argon2."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select

from storekeeper import audit
from storekeeper.errors import StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import User

ROLES = ("admin", "viewer")
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    active: bool


def check_password(password: str) -> None:
    """Raise unless ``password`` is acceptable for a portal user."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StorekeeperError(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.",
            hint="choose a longer password",
        )


def upsert_user(platform: Platform, username: str, password: str, *, role: str = "admin") -> tuple[UserInfo, bool]:
    """Create a user, or reset an existing user's password and role; return (user, created)."""
    if not username or len(username) > 150:
        raise StorekeeperError("A username must be 1 to 150 characters.", hint="--username admin")
    if role not in ROLES:
        raise StorekeeperError(f"Role {role!r} is not one of {', '.join(ROLES)}.", hint="--role admin")
    check_password(password)
    with platform.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        created = user is None
        if user is None:
            user = User(username=username)
            session.add(user)
        user.password_hash = _hasher.hash(password)
        user.role = role
        user.active = True
        audit.record(session, "user.create" if created else "user.update", username, detail=f"role {role}")
        return UserInfo(username, role, True), created


def verify_user(platform: Platform, username: str, password: str) -> UserInfo | None:
    """Return the user when the password matches and the account is active, else None."""
    with platform.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            _hasher.hash(password)  # spend the same time whether or not the user exists
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except VerificationError:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        return UserInfo(user.username, user.role, user.active)
