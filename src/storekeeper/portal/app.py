"""The portal's app factory: ``create_app(config)`` builds the FastAPI app.

``storekeeper start`` runs it with uvicorn (``factory=True``), so each worker
process builds its own app and opens its own platform; tests build one from
the test home's config::

    from storekeeper.config import load_config
    from storekeeper.portal.app import create_app

    app = create_app(load_config())

Routes:

* ``/api/v1/...`` the REST API (``portal/api``); ``/docs`` its offline docs page, ``/openapi.json`` its schema;
* ``/healthz`` public health check;
* ``/admin/...`` the web admin (``portal/ui``), and ``/`` sends browsers there;
* ``/apps/<package>/`` each installed app's own endpoints (``portal/mounts.py``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storekeeper import __version__
from storekeeper.config import Config, load_config
from storekeeper.errors import StorekeeperError
from storekeeper.portal import jobs
from storekeeper.portal.api.main import api_router
from storekeeper.portal.api.routes import health
from storekeeper.portal.docs import install_docs
from storekeeper.portal.limits import install_limits
from storekeeper.portal.mounts import URL_PREFIX, install_outage_handler, mount_app_endpoints, warm_gates
from storekeeper.portal.problems import install_handlers
from storekeeper.portal.state import PortalState
from storekeeper.portal.ui import install_ui

#: Seconds a stopping worker waits for its running jobs before leaving them to be marked lost.
SHUTDOWN_GRACE = 20.0

DESCRIPTION = (
    "Manage persistent store services, apps' settings and stores, and sync them. "
    "Every error is an RFC 9457 problem document with a hint."
)
TAGS = [
    {"name": "auth", "description": "API tokens: sign in with a password to get one."},
    {"name": "services", "description": "Database servers that apps' settings are plugged into."},
    {"name": "apps", "description": "Installed apps, their settings, and syncing their stores."},
    {"name": "stores", "description": "The databases behind apps' settings; dynamic stores."},
    {"name": "jobs", "description": "Background syncs and their per-store progress."},
    {"name": "audit", "description": "Who did what, when, and how it ended."},
    {"name": "users", "description": "Portal users: admins and read-only viewers (admins only)."},
    {"name": "health", "description": "Public health check."},
]

log = logging.getLogger("storekeeper.portal")


class _SecurityHeaders:
    """Add headers that keep browsers from sniffing types, leaking referrers or framing the admin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = not scope.get("path", "").startswith(URL_PREFIX + "/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                if own:
                    extra.append((b"x-frame-options", b"DENY"))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _recover(portal: PortalState) -> None:
    try:
        lost = jobs.fail_lost_jobs(portal.platform())
    except StorekeeperError as err:  # not set up yet: requests will say so, with the fix
        log.warning("%s (fix: %s)", err.message, err.hint)
        return
    if lost:
        log.warning("marked %d job(s) of stopped workers as failed", lost)


def create_app(config: Config | None = None) -> FastAPI:
    """Build the portal: web admin, REST API, health check, docs page and apps' own endpoints."""
    portal = PortalState(config or load_config())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_recover, portal)
        await run_in_threadpool(warm_gates, app.state.app_gates)
        # Everything loaded so far lives as long as the worker: move it out of the
        # collector's reach, so full collections stop pausing requests for ~100 ms.
        gc.collect()
        gc.freeze()
        yield
        await run_in_threadpool(jobs.wait_for_jobs, SHUTDOWN_GRACE)
        portal.close()

    app = FastAPI(
        title="storekeeper",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; ours works offline
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.portal = portal
    install_handlers(app)
    install_outage_handler(app)
    app.add_middleware(_SecurityHeaders)
    install_limits(app, portal.config)
    # Apps' endpoints first: FastAPI tries routes in order, and an app's request should not
    # be matched against every REST API and web admin route before its own (no path overlaps).
    mount_app_endpoints(app, portal)
    app.include_router(health.router)
    app.include_router(api_router)
    install_ui(app)
    install_docs(app)
    return app
