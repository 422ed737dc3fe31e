"""``/admin/audit``: the audit log, newest first, filtered by action and target."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from storekeeper import audit
from storekeeper.portal.deps import PlatformDep
from storekeeper.portal.ui.deps import PageUser
from storekeeper.portal.ui.pages import PageRoute, render

router = APIRouter(prefix="/audit", route_class=PageRoute)

#: Offered in the action filter; the log may hold others (typed in by hand).
ACTIONS = (
    "app.orphan",
    "app.register",
    "app.remove",
    "job.submit",
    "service.create",
    "service.remove",
    "service.update",
    "setting.assign",
    "setting.reset",
    "store.create",
    "store.drop",
    "store.register",
    "store.sync",
    "token.create",
    "token.revoke",
    "user.create",
    "user.sign_in",
    "user.update",
)
LIMITS = (50, 100, 200, 500)


@router.get("")
def list_events(
    request: Request,
    platform: PlatformDep,
    _: PageUser,
    action: str = Query("", max_length=100),
    target: str = Query("", max_length=300),
    limit: int = Query(100, ge=1, le=1000),
) -> HTMLResponse:
    """Show who did what to which service, app or store, when, and how it ended."""
    events = audit.list_events(platform, action=action.strip() or None, target=target.strip() or None, limit=limit)
    return render(
        request,
        "audit.html",
        section="audit",
        events=events,
        action=action,
        target=target,
        limit=limit,
        actions=ACTIONS,
        limits=LIMITS,
    )
