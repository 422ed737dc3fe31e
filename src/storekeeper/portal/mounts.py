"""Apps' own endpoints: an installed app's ``router`` is served at ``/apps/<package>/``.

An app class sets ``router`` to where its endpoints are, as a string
``"package.module:attribute"``, imported only here, by the portal (so commands
that load the app never import FastAPI or the app's routes); or to the object
itself. The object is a FastAPI ``APIRouter`` (its routes join the portal's
OpenAPI schema and error handling) or any ASGI app (mounted as is).

Example (in the app's package)::

    # links/app.py
    class App(AppBase):
        package = "links"
        router = "links.routes:router"

    # links/routes.py
    from fastapi import APIRouter
    from links.app import App

    router = APIRouter()

    @router.get("/links")
    def links():
        engine = App.get_persistent_store_database("primary_db")
        ...

Until every required setting has a service and every assigned store is
initialized (in testing mode: every required setting has a service), requests get 503 with a problem document telling the admin what to
assign and sync. When a store's server does not answer an app's request (down,
unreachable, out of connections), the request gets 503 with ``Retry-After``
naming the app, not a 500 (:func:`install_outage_handler`). Readiness is checked on the platform database and, once
ready, trusted for ``engines.revalidate_seconds`` (the same bound the store
engines' cache uses), so a ready app's requests cost no platform query.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy.exc
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from storekeeper import apps, discovery
from storekeeper.errors import AppError, PlatformError, StorekeeperError
from storekeeper.platform.models import DATABASE
from storekeeper.portal.problems import error_response
from storekeeper.portal.state import PortalState
from storekeeper.stores.mode import testing_mode

if TYPE_CHECKING:
    from storekeeper.apps import AppInfo

URL_PREFIX = "/apps"

log = logging.getLogger("storekeeper.portal")


def not_ready_error(info: AppInfo) -> AppError | None:
    """Return the 503 error saying what to assign and sync, or None when the app is ready."""
    if info.configured and info.ready:
        return None
    live = [s for s in info.settings if not s.orphaned and not s.dynamic]
    unassigned = [s.name for s in live if s.required and not s.service]
    # In testing mode the app runs on test copies (made by the fixtures), not the real stores.
    unsynced = (
        []
        if testing_mode()
        else [s.name for s in live if s.kind == DATABASE and s.service and s.state != "initialized"]
    )
    if not unassigned and not unsynced:
        return None
    package = info.package
    problems, steps = [], []
    if unassigned:
        problems.append(f"required setting(s) {', '.join(unassigned)} have no service assigned")
        steps.append(
            f"assign a service to each (storekeeper app-settings set {package} SETTING SERVICE, "
            f"or PUT /api/v1/apps/{package}/settings/SETTING)"
        )
    if unsynced or unassigned:
        if unsynced:
            problems.append(f"store(s) {', '.join(unsynced)} are not initialized")
        steps.append(f"sync its stores (storekeeper syncstores {package}, or POST /api/v1/apps/{package}/sync)")
    return AppError.not_ready(package, problems, steps)


class ReadinessGate:
    """Check, with a short cache of the good answer, that an app may serve requests.

    A "ready" answer is trusted for ``engines.revalidate_seconds``. When it runs
    out, requests keep being served on it while **one** check runs in a worker
    thread (stale-while-revalidate): without that, every request in flight at
    that moment started its own platform query, and a worker stalled for tens of
    milliseconds every half minute. An app found not ready answers 503 from the
    next request on, so the bound is the revalidation time plus one check.
    """

    def __init__(self, portal: PortalState, package: str) -> None:
        self.portal = portal
        self.package = package
        self._ready_until = 0.0
        self._was_ready = False
        self._refresh: asyncio.Future[None] | None = None

    def check(self) -> None:
        """Raise the 503 error (or the platform's error) unless the app is ready."""
        if time.monotonic() < self._ready_until:
            return
        try:
            info = apps.get_app(self.portal.platform(), self.package)
            err = not_ready_error(info)
        except BaseException:
            self._was_ready = False
            raise
        if err is not None:
            self._was_ready = False
            raise err
        self._ready_until = time.monotonic() + self.portal.config.engines_revalidate_seconds
        self._was_ready = True

    async def ensure_ready(self) -> None:
        """``check`` from the event loop: a fresh good answer costs nothing, a stale one starts one refresh."""
        if time.monotonic() < self._ready_until:
            return
        if self._was_ready:
            refresh = self._refresh
            # A refresh left behind by an event loop that has ended (a test client's) never finishes.
            if refresh is None or refresh.done() or refresh.get_loop() is not asyncio.get_running_loop():
                self._refresh = asyncio.ensure_future(self._revalidate())
            return
        await run_in_threadpool(self.check)

    async def _revalidate(self) -> None:
        try:
            await run_in_threadpool(self.check)
        except Exception as err:  # the next request finds _was_ready False and answers with the reason
            log.info('App "%s" is no longer ready: %s', self.package, err)

    async def dependency(self, request: Request) -> None:
        await self.ensure_ready()


class _GatedASGI:
    """Wrap an app's ASGI app so it only sees requests once the app is ready."""

    def __init__(self, inner: ASGIApp, gate: ReadinessGate) -> None:
        self.inner = inner
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            try:
                await self.gate.ensure_ready()
            except StorekeeperError as err:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1013})  # try again later
                    return
                await error_response(err, scope.get("path"))(scope, receive, send)
                return
        await self.inner(scope, receive, send)


#: Seconds an app's client is told to wait (Retry-After) when a store's server does not answer.
OUTAGE_RETRY_AFTER = 10
#: What a database driver raises when its server is down, unreachable or out of connections.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


async def _outage(request: Request, err: Exception) -> JSONResponse:
    """Answer a request whose database did not answer with 503 and Retry-After, never a 500.

    Under /apps/<package>/ the document names the app; the driver's message (host,
    port, user) goes to the log only.
    """
    path = request.url.path
    parts = path.split("/")
    log.warning("%s %s: a database did not answer: %s", request.method, path, str(err).strip().splitlines()[:1])
    problem: StorekeeperError
    if path.startswith(URL_PREFIX + "/") and len(parts) > 2 and parts[2]:
        problem = AppError.store_unreachable(parts[2])
    else:
        problem = PlatformError(
            "A database the portal needs did not answer.",
            hint="try again in a few seconds; if it lasts, an admin checks the portal's log and that the server "
            "of database.url is running (storekeeper settings --get database.url)",
        )
    response = error_response(problem, path)
    response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER)
    return response


def install_outage_handler(app: FastAPI) -> None:
    """Turn a database that does not answer, in an app's request (or the portal's), into 503 + Retry-After."""
    for error in OUTAGE_ERRORS:
        app.add_exception_handler(error, _outage)


def resolve_router(package: str, declared: object) -> Any:
    """Return an app's router: ``declared`` itself, or the object a ``"module:attribute"`` string names.

    Returns None (and logs why) when the string is malformed or its import fails: one app's
    mistake must not keep the portal from starting.
    """
    if not isinstance(declared, str):
        return declared
    module_name, sep, attr = declared.partition(":")
    if not sep or not module_name or not attr:
        log.warning('App "%s": router %r is not written "package.module:attribute"; not mounted.', package, declared)
        return None
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except Exception as err:  # an app's import error is its own, not the portal's
        log.warning(
            'App "%s": router %r could not be imported (%s: %s); not mounted.',
            package,
            declared,
            type(err).__name__,
            err,
        )
        return None


def warm_gates(gates: list[ReadinessGate]) -> None:
    """Ask each mounted app's readiness once, so a worker's first requests find the answer cached.

    Run when a worker starts (in a worker thread); an app that is not ready is left to
    answer its requests with the 503 that says why.
    """
    for gate in gates:
        try:
            gate.check()
        except Exception as err:  # never a reason not to start: the app's requests will say what is wrong
            log.debug('App "%s" is not ready at start: %s', gate.package, err)


def mount_app_endpoints(app: FastAPI, portal: PortalState) -> list[str]:
    """Serve each installed app's ``router`` at /apps/<package>/; return the packages mounted.

    The apps' readiness gates are kept in ``app.state.app_gates`` (see :func:`warm_gates`).
    """
    installed, _ = discovery.installed_apps()
    mounted = []
    gates: list[ReadinessGate] = []
    app.state.app_gates = gates
    for package, app_cls in sorted(installed.items()):
        endpoint: Any = resolve_router(package, getattr(app_cls, "router", None))
        if endpoint is None:
            continue
        gate = ReadinessGate(portal, package)
        prefix = f"{URL_PREFIX}/{package}"
        if isinstance(endpoint, APIRouter):
            app.include_router(
                endpoint, prefix=prefix, tags=[f"app: {package}"], dependencies=[Depends(gate.dependency)]
            )
        elif callable(endpoint):
            app.mount(prefix, _GatedASGI(endpoint, gate), name=f"app:{package}")
        else:  # one app's mistake must not keep the portal from starting
            log.warning('App "%s": router is neither a FastAPI APIRouter nor an ASGI app; not mounted.', package)
            continue
        mounted.append(package)
        gates.append(gate)
    return mounted
