"""The audit log: who did what to which service, app or store, when, and how it ended."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storekeeper.platform import Platform
from storekeeper.platform.models import AuditEvent


def _os_actor() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


_actor: ContextVar[str | None] = ContextVar("storekeeper_actor", default=None)


def current_actor() -> str:
    """Return who is acting: a portal user set by :func:`acting_as`, else the OS user."""
    return _actor.get() or _os_actor()


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Attribute audit events inside the block to ``actor`` (e.g. ``user:alice``)."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def record(session: Session, action: str, target: str, outcome: str = "ok", detail: str = "") -> None:
    """Add an audit event to ``session`` (committed with it)."""
    session.add(AuditEvent(actor=current_actor(), action=action, target=target, outcome=outcome, detail=detail[:4000]))


def record_now(platform: Platform, action: str, target: str, outcome: str = "ok", detail: str = "") -> None:
    """Record an audit event in its own transaction (for outcomes of work done outside one)."""
    with platform.session() as session:
        record(session, action, target, outcome, detail)


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


def list_events(
    platform: Platform, *, action: str | None = None, target: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Return the newest audit events, optionally filtered by action or target prefix."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if target:
        stmt = stmt.where(AuditEvent.target.startswith(target))
    with platform.session() as session:
        return [AuditEntry(e.at, e.actor, e.action, e.target, e.outcome, e.detail) for e in session.scalars(stmt)]
