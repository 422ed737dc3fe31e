"""The ``/admin`` router: every page's router, wired together, and a 404 page for the rest."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from storekeeper.errors import PortalError
from storekeeper.portal.ui.deps import PageUser
from storekeeper.portal.ui.pages import PREFIX, PageRoute, error_page
from storekeeper.portal.ui.routes import apps, audit, home, services, session, users

#: The pages' routers, in the order they are matched.
PAGE_ROUTERS = tuple(module.router for module in (session, home, services, apps, users, audit))

ui_router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
for page_router in PAGE_ROUTERS:
    ui_router.include_router(page_router)


@ui_router.get("")
def admin_root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@ui_router.api_route("/{path:path}", methods=["GET", "POST"])
def not_found(path: str, request: Request, _: PageUser) -> HTMLResponse:
    """Answer an unknown admin address with a page that links back home."""
    return error_page(request, PortalError.no_page(request.url.path))
