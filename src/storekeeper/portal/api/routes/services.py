"""``/api/v1/services``: register, change, test and remove database servers."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Query, Response, status

from storekeeper import services
from storekeeper.portal.api.models import (
    REACHES_SERVER,
    ServiceCreate,
    ServiceOut,
    ServiceRemoved,
    ServiceTestOut,
    ServiceUpdate,
    problem_responses,
)
from storekeeper.portal.deps import AdminDep, CurrentUser, PlatformDep

router = APIRouter(prefix="/services", tags=["services"])


@router.get("", response_model=list[ServiceOut])
def list_services(platform: PlatformDep, _: CurrentUser) -> list[ServiceOut]:
    """List the registered services (never their passwords)."""
    return [ServiceOut.of(s) for s in services.list_services(platform)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ServiceOut)
def create_service(body: ServiceCreate, response: Response, platform: PlatformDep, _: AdminDep) -> ServiceOut:
    """Register a PostgreSQL server as a persistent store service."""
    info = services.create_service(platform, **body.model_dump())
    response.headers["Location"] = f"/api/v1/services/{quote(info.name, safe='')}"
    return ServiceOut.of(info)


@router.get("/{name}", response_model=ServiceOut)
def get_service(name: str, platform: PlatformDep, _: CurrentUser) -> ServiceOut:
    """Show one service."""
    return ServiceOut.of(services.get_service(platform, name))


@router.patch("/{name}", response_model=ServiceOut)
def update_service(name: str, body: ServiceUpdate, platform: PlatformDep, _: AdminDep) -> ServiceOut:
    """Change a service's connection details; only the fields sent change."""
    return ServiceOut.of(services.update_service(platform, name, **body.model_dump(exclude_unset=True)))


@router.delete("/{name}", response_model=ServiceRemoved)
def remove_service(
    name: str,
    platform: PlatformDep,
    _: AdminDep,
    force: bool = Query(False, description="Unassign the settings using it (their stores stay on the server)."),
) -> ServiceRemoved:
    """Remove a service; refused while settings use it, unless force=true."""
    return ServiceRemoved(service=name, unassigned=services.remove_service(platform, name, force=force))


@router.post("/{name}/test", response_model=ServiceTestOut, responses=problem_responses(*REACHES_SERVER))
def test_service(name: str, platform: PlatformDep, _: CurrentUser) -> ServiceTestOut:
    """Connect to a service: version, privileges, PostGIS, connection headroom."""
    return ServiceTestOut.model_validate(services.test_service(platform, name))


@router.post("/{name}/rotate-password", response_model=ServiceOut, responses=problem_responses(*REACHES_SERVER))
def rotate_password(name: str, platform: PlatformDep, _: AdminDep) -> ServiceOut:
    """Give the service's user a new random password (never returned); running apps follow it."""
    from storekeeper import localdb

    config = platform.config
    info = services.rotate_password(
        platform, name, on_rotated=lambda old, new: localdb.follow_rotation(config, old, new)
    )
    return ServiceOut.of(info)
