"""``/api/v1/jobs``: background jobs (syncs) and their per-store progress."""

from __future__ import annotations

from fastapi import APIRouter, Query

from storekeeper.portal import jobs
from storekeeper.portal.api.models import JobOut
from storekeeper.portal.deps import CurrentUser, PlatformDep

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=list[JobOut])
def list_jobs(
    platform: PlatformDep,
    _: CurrentUser,
    app: str | None = Query(None, description="Only this app's jobs."),
    limit: int = Query(20, ge=1, le=200),
) -> list[JobOut]:
    """List the newest jobs."""
    return [JobOut.of(j) for j in jobs.list_jobs(platform, app=app, limit=limit)]


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, platform: PlatformDep, _: CurrentUser) -> JobOut:
    """Show a job: status, and each store's outcome so far."""
    return JobOut.of(jobs.get_job(platform, job_id))
