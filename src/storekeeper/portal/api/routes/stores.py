"""``/api/v1/apps/{app}/stores``: an app's stores; create and drop dynamic ones."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Response, status

from storekeeper import stores
from storekeeper.portal.api.models import (
    REACHES_SERVER,
    RotationOut,
    StoreCreate,
    StoreOut,
    SyncResultOut,
    problem_responses,
)
from storekeeper.portal.deps import AdminDep, CurrentUser, PlatformDep

router = APIRouter(prefix="/apps/{app}/stores", tags=["stores"])


@router.get("", response_model=list[StoreOut])
def list_stores(app: str, platform: PlatformDep, _: CurrentUser) -> list[StoreOut]:
    """List an app's stores with what their services say (exists, size)."""
    return [StoreOut.model_validate(s) for s in stores.list_stores(platform, app)]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SyncResultOut, responses=problem_responses(*REACHES_SERVER)
)
def create_store(app: str, body: StoreCreate, response: Response, platform: PlatformDep, _: AdminDep) -> SyncResultOut:
    """Create a dynamic store through a connection setting and initialize it (idempotent).

    ``initializer`` must name a function in the app's own package (``<package>.module.function``);
    anything else is refused with 422 before it is imported.
    """
    stores.check_initializer_path(app, body.initializer)
    result = stores.create_store(
        platform,
        app,
        body.name,
        body.connection,
        spatial=body.spatial,
        initializer=body.initializer,
        refresh=body.refresh,
    )
    response.headers["Location"] = f"/api/v1/apps/{quote(app, safe='')}/stores/{quote(body.name, safe='')}"
    return SyncResultOut.of(result)


@router.post("/rotate-credentials", response_model=list[RotationOut], responses=problem_responses(*REACHES_SERVER))
def rotate_credentials(app: str, platform: PlatformDep, _: AdminDep, database: str | None = None) -> list[RotationOut]:
    """Give the app's store roles (or one store's, ``?database=NAME``) new passwords; no request fails meanwhile."""
    return [RotationOut.model_validate(r) for r in stores.rotate_credentials(platform, app, database=database)]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(*REACHES_SERVER))
def drop_store(app: str, name: str, platform: PlatformDep, _: AdminDep, backup: bool = True) -> Response:
    """Drop a store's database and its data (idempotent); a dynamic store is forgotten too.

    Its data is exported into the home's ``backups/`` first (``?backup=false`` skips it;
    ``backups.keep`` files per store are kept there); nothing is dropped if that fails.
    """
    if backup:
        from storekeeper.stores import backups

        backups.backup_before(platform, app, [name], backups.default_dir(platform))
    stores.drop_store(platform, app, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
