"""Portal users: admins and read-only viewers, passwords hashed with argon2.

A new username must match :data:`USERNAME_RULE` (lowercase ASCII, so no control
characters, spaces or look-alike letters); users made before the rule keep
their names and still sign in. Resetting a password, or disabling a user, ends
that user's web admin sessions (their rows in ``portal_sessions`` are deleted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storekeeper import audit
from storekeeper.errors import UserError
from storekeeper.platform import Platform
from storekeeper.platform.models import PortalSession, User

ROLES = ("admin", "viewer")
MIN_PASSWORD_LENGTH = 8
#: What a new username must match: a lowercase ASCII letter, then up to 63 of [a-z0-9_.-].
USERNAME_RULE = "[a-z][a-z0-9_.-]{0,63}"
#: The same rule anchored, for JSON schemas and HTML ``pattern`` attributes.
USERNAME_PATTERN = f"^{USERNAME_RULE}$"
_USERNAME = re.compile(USERNAME_RULE, re.ASCII)
_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    active: bool


def check_password(password: str) -> None:
    """Raise unless ``password`` is acceptable for a portal user."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError.short_password(MIN_PASSWORD_LENGTH)


def check_username(username: str) -> None:
    """Raise (422, naming :data:`USERNAME_RULE`) unless ``username`` is acceptable for a new user."""
    if not _USERNAME.fullmatch(username):
        raise UserError.bad_username(username, USERNAME_RULE)


def _check_new(username: str, role: str) -> None:
    check_username(username)
    if role not in ROLES:
        raise UserError.unknown_role(role, ROLES)


#: Bumped each time this process changes who may do what (a user's role, active flag or
#: password, a revoked API token); caches of signed-in users drop what they kept before.
_credentials_generation = 0


def credentials_generation() -> int:
    """Return how many times this process has changed users' or tokens' rights (see :func:`credentials_changed`)."""
    return _credentials_generation


def credentials_changed() -> None:
    """Record that a user's rights or a token changed, once the change is committed.

    The portal's token cache (:class:`storekeeper.portal.auth.TokenCache`) then refuses
    every entry it kept before, so the change takes effect at once in this process.
    """
    global _credentials_generation
    _credentials_generation += 1


def end_sessions(session: Session, user: User) -> None:
    """Delete every web admin session of ``user``: a replayed cookie of theirs is refused from now on."""
    session.execute(delete(PortalSession).where(PortalSession.user_id == user.id))


def upsert_user(platform: Platform, username: str, password: str, *, role: str = "admin") -> tuple[UserInfo, bool]:
    """Create a user, or reset an existing user's password and role; return (user, created).

    An existing user keeps their name even when it predates :data:`USERNAME_RULE`;
    a new one must match it. Resetting the password ends the user's sessions.
    """
    if role not in ROLES:
        raise UserError.unknown_role(role, ROLES)
    check_password(password)
    with platform.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        created = user is None
        if user is None:
            check_username(username)
            user = User(username=username)
            session.add(user)
        else:
            end_sessions(session, user)
        user.password_hash = _hasher.hash(password)
        user.role = role
        user.active = True
        audit.record(session, "user.create" if created else "user.update", username, detail=f"role {role}")
    credentials_changed()
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


def list_users(platform: Platform) -> list[UserInfo]:
    """Return every portal user, by username."""
    with platform.session() as session:
        return [UserInfo(u.username, u.role, u.active) for u in session.scalars(select(User).order_by(User.username))]


def get_user(platform: Platform, username: str) -> UserInfo:
    """Return one portal user."""
    with platform.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise UserError.not_found(username)
        return UserInfo(user.username, user.role, user.active)


def create_user(platform: Platform, username: str, password: str, *, role: str = "viewer") -> UserInfo:
    """Create a portal user; refused when the username is taken."""
    _check_new(username, role)
    check_password(password)
    password_hash = _hasher.hash(password)
    try:
        with platform.session() as session:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise UserError.taken(username)
            session.add(User(username=username, password_hash=password_hash, role=role, active=True))
            audit.record(session, "user.create", username, detail=f"role {role}")
    except IntegrityError:  # created by someone else between our check and our insert
        raise UserError.taken(username) from None
    return UserInfo(username, role, True)


def update_user(
    platform: Platform,
    username: str,
    *,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> UserInfo:
    """Change a user's role, enable or disable them, or reset their password.

    Refused when it would leave no active admin.
    """
    if role is not None and role not in ROLES:
        raise UserError.unknown_role(role, ROLES)
    if password is not None:
        check_password(password)
    with platform.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise UserError.not_found(username)
        demoted = user.role == "admin" and user.active and (role == "viewer" or active is False)
        if demoted:
            admins = session.scalars(select(User.username).where(User.role == "admin", User.active.is_(True))).all()
            if admins == [username]:
                raise UserError.last_admin(username)
        changed: list[str] = []
        if role is not None and role != user.role:
            user.role, changed = role, [*changed, f"role {role}"]
        if active is not None and active != user.active:
            user.active, changed = active, [*changed, "enabled" if active else "disabled"]
        if password is not None:
            user.password_hash, changed = _hasher.hash(password), [*changed, "password reset"]
        if password is not None or active is False:
            end_sessions(session, user)
        audit.record(session, "user.update", username, detail=", ".join(changed) or "no changes")
        info = UserInfo(user.username, user.role, user.active)
    credentials_changed()
    return info
