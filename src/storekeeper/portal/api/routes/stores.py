"""``/api/v1/apps/{app}/stores``: an app's stores; create and drop dynamic ones."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Response, status

from storekeeper import stores
from storekeeper.errors import InputError
from storekeeper.portal.api.models import (
    REACHES_SERVER,
    MigrateRequest,
    MigrateResultOut,
    MigrationStatusOut,
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


@router.get("/migrations", response_model=list[MigrationStatusOut], responses=problem_responses(*REACHES_SERVER))
def migration_status(app: str, platform: PlatformDep, _: CurrentUser) -> list[MigrationStatusOut]:
    """Each store's schema revision, its migrations' head and the revisions pending (``stores current``)."""
    return [MigrationStatusOut.model_validate(s.to_dict()) for s in stores.migration_status(platform, app)]


@router.post("/migrate", response_model=list[MigrateResultOut], responses=problem_responses(*REACHES_SERVER))
def migrate(app: str, body: MigrateRequest, platform: PlatformDep, _: AdminDep) -> list[MigrateResultOut]:
    """Bring the app's stores to their migrations' head, one store to a revision (``to``), or record one (``stamp``).

    A revision that fails leaves its store at the last good revision and answers 409 naming it.
    """
    if body.to is not None and body.stamp is not None:
        raise InputError("to and stamp cannot be used together.", hint="send one of them", status=422)
    results = stores.migrate(platform, app, body.store, to=body.to, stamp=body.stamp, sql=body.sql)
    return [MigrateResultOut.model_validate(r.to_dict()) for r in results]


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
