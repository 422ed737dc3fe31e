"""The ``/api/v1`` router: every resource's router, wired together."""

from __future__ import annotations

from fastapi import APIRouter

from storekeeper.portal.api.models import problem_responses
from storekeeper.portal.api.routes import apps, audit, auth, backups, jobs, services, stores, users

PREFIX = "/api/v1"

#: What any call may answer besides its own statuses: a bad request, not signed in, not allowed, not found,
#: a conflict, a body too large, an invalid request, the platform database unreachable.
api_router = APIRouter(prefix=PREFIX, responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503))
for module in (auth, services, apps, stores, backups, jobs, audit, users):
    api_router.include_router(module.router)
