"""``/admin/``: the installed apps and their state (configured? every store ready?)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from storekeeper import apps, services
from storekeeper.portal.deps import PlatformDep
from storekeeper.portal.ui.deps import PageUser
from storekeeper.portal.ui.pages import PREFIX, PageRoute, render

router = APIRouter(route_class=PageRoute)


@router.get("/")
def home(request: Request, platform: PlatformDep, _: PageUser) -> HTMLResponse:
    """List the apps with their state, the entry points that failed to load, and what ``doctor`` finds."""
    from storekeeper import doctor

    infos, problems = apps.list_apps(platform)
    try:
        findings = [f for f in doctor.check(platform=platform).findings if f.level != "info"]
    except Exception:  # the page still shows the apps
        findings = []
    return render(
        request,
        "home.html",
        section="home",
        apps=infos,
        problems=problems,
        services=services.list_services(platform),
        findings=findings,
    )


@router.get("/apps")
def apps_index() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)
