"""``/admin/``: the installed apps and their state (configured? every store ready?)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from storekeeper import apps, services
from storekeeper.portal.deps import PlatformDep, PortalDep
from storekeeper.portal.ui.deps import PageUser
from storekeeper.portal.ui.pages import PREFIX, PageRoute, render

router = APIRouter(route_class=PageRoute)


@router.get("/")
def home(request: Request, platform: PlatformDep, portal: PortalDep, user: PageUser) -> HTMLResponse:
    """List the apps with their state, the entry points that failed to load, and (admins) doctor's findings."""
    infos, problems = apps.list_apps(platform)
    return render(
        request,
        "home.html",
        section="home",
        apps=infos,
        problems=problems,
        services=services.list_services(platform),
        doctor=portal.doctor() if user.is_admin else None,
    )


@router.get("/apps")
def apps_index() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)
