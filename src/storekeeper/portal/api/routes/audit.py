"""``/api/v1/audit``: the audit log, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Query

from storekeeper import audit
from storekeeper.portal.api.models import AuditOut
from storekeeper.portal.deps import CurrentUser, PlatformDep

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditOut])
def list_events(
    platform: PlatformDep,
    _: CurrentUser,
    action: str | None = Query(None, description="Only this action, e.g. service.create or store.sync."),
    target: str | None = Query(None, description="Only targets starting with this, e.g. my_app or my_app/db."),
    limit: int = Query(100, ge=1, le=1000),
) -> list[AuditOut]:
    """List audit events: who did what to which service, app or store, when, and how it ended."""
    return [AuditOut.of(e) for e in audit.list_events(platform, action=action, target=target, limit=limit)]
