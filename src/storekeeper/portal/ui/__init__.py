"""The web admin: server-rendered pages under ``/admin/`` for services, apps, users and the audit log.

The pages call the same core functions as the REST API and the CLI; they add
only forms, templates and one small stylesheet and script (``static/``, no
build step, nothing from the internet). ``install_ui(app)`` wires it in::

    app = FastAPI()
    install_ui(app)          # /admin/static/..., /admin/..., and / -> /admin/

Who may do what:

* no session cookie (or an expired one): every page redirects to
  ``/admin/login?next=...``;
* every ``POST`` carries the form's CSRF token and is refused with a 403 page
  without it;
* a viewer sees every page, and gets a 403 page for every change (signing out
  and testing a service's connection change nothing, so they may).

Errors from the core are shown on the page as an alert with message and hint;
anything unexpected is a bare 500 page (the traceback goes to the log).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from storekeeper.portal.ui.main import PREFIX, ui_router
from storekeeper.portal.ui.pages import STATIC_DIR

__all__ = ["PREFIX", "install_ui"]


def install_ui(app: FastAPI) -> None:
    """Serve the web admin at /admin/ (and send / there)."""
    # The static mount goes first: the admin router ends with a catch-all 404 page.
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="admin-static")
    app.include_router(ui_router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)
