"""``GET /healthz`` (at the root, public): is the platform database reachable, and each service?

Anyone gets only ``{"status": "ok" | "degraded" | "down"}`` (503 when down), so
a load balancer can probe it without learning the portal's hosts, ports or
database users. A signed-in admin (API token or web admin session) also gets
each check with its error message; never a URL with a password. Service checks
run in parallel and their answer is reused for :data:`CACHE_SECONDS`, so an
anonymous caller cannot make the portal open connections at will.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from storekeeper import services
from storekeeper.errors import StorekeeperError
from storekeeper.platform import db
from storekeeper.portal import auth
from storekeeper.portal.api.models import Check, Health, HealthStatus, ServiceCheck
from storekeeper.portal.deps import PortalDep, bearer_scheme

CACHE_SECONDS = 5.0
#: How long the doctor's finding counts an admin sees are reused (it asks every service and store).
DOCTOR_CACHE_SECONDS = 30.0
MAX_PARALLEL = 8

router = APIRouter(tags=["health"])
log = logging.getLogger("storekeeper.portal")


@router.get(
    "/healthz",
    response_model=Health | HealthStatus,
    responses={503: {"model": Health | HealthStatus, "description": "The platform database is down."}},
)
def healthz(
    request: Request,
    portal: PortalDep,
    response: Response,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Health | HealthStatus:
    """Say whether the portal is ok, degraded (a service unreachable) or down (the platform database is).

    Public; the checks behind the answer (which service, what error) only for a signed-in admin.
    """
    health = portal.cached("healthz")
    if health is None:
        health = _check(portal)
        portal.remember("healthz", health, CACHE_SECONDS)
    if health.status == "down":
        response.status_code = 503
    response.headers["Cache-Control"] = "no-store"
    if _is_admin(request, portal, credentials):
        return health.model_copy(update={"findings": _findings(portal)}) if health.status != "down" else health
    return HealthStatus(status=health.status)


def _findings(portal: PortalDep) -> dict[str, int] | None:
    """Count the doctor's findings (cached); None when it could not run."""
    counts = portal.cached("doctor")
    if counts is None:
        from storekeeper import doctor

        try:
            counts = doctor.check(platform=portal.platform()).counts()
        except Exception as err:  # the probe still answers
            log.warning("storekeeper doctor raised %s: %s", type(err).__name__, err)
            return None
        portal.remember("doctor", counts, DOCTOR_CACHE_SECONDS)
    return dict(counts)


def _is_admin(request: Request, portal: PortalDep, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Whether the request is signed in as an admin; a bad token or cookie just means "no" here."""
    try:
        platform = portal.platform()
        if credentials is not None:
            principal = auth.authenticate_token(platform, credentials.credentials)
        else:
            principal = auth.session_principal(request, platform)
    except StorekeeperError:
        return False
    return principal is not None and principal.is_admin


def _check(portal: PortalDep) -> Health:
    try:
        platform = portal.platform()
        db.check_schema(platform.engine)
        names = [s.name for s in services.list_services(platform)]
    except StorekeeperError as err:
        return Health(status="down", platform=Check(ok=False, error=err.message), services=[])
    except Exception as err:  # e.g. the platform database went away mid-query
        log.warning("health check of the platform database raised %s: %s", type(err).__name__, err)
        error = f"the check raised {type(err).__name__}; see the portal's log"
        return Health(status="down", platform=Check(ok=False, error=error), services=[])

    def one(name: str) -> ServiceCheck:
        try:
            services.test_service(platform, name)
        except StorekeeperError as err:
            return ServiceCheck(name=name, ok=False, error=err.message)
        except Exception as err:  # whatever a driver raises for an odd record: the check fails, the probe answers
            log.warning("health check of service %s raised %s: %s", name, type(err).__name__, err)
            return ServiceCheck(
                name=name, ok=False, error=f"the check raised {type(err).__name__}; see the portal's log"
            )
        return ServiceCheck(name=name, ok=True)

    checks: list[ServiceCheck] = []
    if names:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
            checks = list(pool.map(one, names))
    return Health(status="ok" if all(c.ok for c in checks) else "degraded", platform=Check(ok=True), services=checks)
