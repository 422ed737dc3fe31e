"""``GET /healthz`` (at the root, public): is the platform database reachable, and each service?

It answers with names and error messages only: no URL, user or password. Service
checks run in parallel and their answer is reused for :data:`CACHE_SECONDS`, so
an anonymous caller cannot make the portal open connections at will.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Response

from storekeeper import services
from storekeeper.errors import StorekeeperError
from storekeeper.platform import db
from storekeeper.portal.api.models import Check, Health, ServiceCheck
from storekeeper.portal.deps import PortalDep

CACHE_SECONDS = 5.0
MAX_PARALLEL = 8

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(portal: PortalDep, response: Response) -> Health:
    """Report whether the platform database and each service are reachable (public, no secrets)."""
    health = portal.cached("healthz")
    if health is None:
        health = _check(portal)
        portal.remember("healthz", health, CACHE_SECONDS)
    if health.status == "failing":
        response.status_code = 503
    response.headers["Cache-Control"] = "no-store"
    return health


def _check(portal: PortalDep) -> Health:
    try:
        platform = portal.platform()
        db.check_schema(platform.engine)
        names = [s.name for s in services.list_services(platform)]
    except StorekeeperError as err:
        return Health(status="failing", platform=Check(ok=False, error=err.message), services=[])

    def one(name: str) -> ServiceCheck:
        try:
            services.test_service(platform, name)
        except StorekeeperError as err:
            return ServiceCheck(name=name, ok=False, error=err.message)
        return ServiceCheck(name=name, ok=True)

    checks: list[ServiceCheck] = []
    if names:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
            checks = list(pool.map(one, names))
    return Health(status="ok" if all(c.ok for c in checks) else "degraded", platform=Check(ok=True), services=checks)
