"""A store's backup file over HTTP (admins only): download one (``export``), upload one to restore (``import``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from storekeeper.backends.names import database_name
from storekeeper.portal.api.models import REACHES_SERVER, problem_responses
from storekeeper.portal.deps import AdminDep, PlatformDep
from storekeeper.stores import backups, dumps

router = APIRouter(prefix="/apps/{app}/stores", tags=["stores"])


@router.get(
    "/{name}/export",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The backup file."},
        **problem_responses(*REACHES_SERVER),
    },
)
def export_store(app: str, name: str, platform: PlatformDep, _: AdminDep) -> FileResponse:
    """Download a store's backup file (what ``storekeeper stores export`` writes; ``stores import`` reads it).

    The file is made in a temporary directory, sent, then removed.
    """
    work = Path(tempfile.mkdtemp(prefix="storekeeper-export-"))
    try:
        filename = f"{database_name(app, name)}{dumps.SUFFIX}"
        backups.export_store(platform, app, name, work / filename)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        work / filename,
        media_type="application/octet-stream",
        filename=filename,
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


@router.post(
    "/{name}/import",
    responses={
        200: {"description": "What the import did (as ``storekeeper stores import --json`` prints it)."},
        **problem_responses(*REACHES_SERVER),
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string"}}}}
    },
)
async def import_store(
    app: str,
    name: str,
    request: Request,
    platform: PlatformDep,
    _: AdminDep,
    replace: bool = False,
    keep_previous: bool = False,
) -> dict[str, object]:
    """Restore an uploaded backup file (the request body) into a store; ``?replace=true`` to replace its data.

    The whole file is checked before anything is touched; the store is swapped in whole
    (``storekeeper stores import``). Bodies up to ``backups.max_upload_bytes``.
    """
    work = Path(tempfile.mkdtemp(prefix="storekeeper-upload-"))
    try:
        file = work / "upload.skbackup"
        with open(file, "wb") as out:
            async for chunk in request.stream():
                await run_in_threadpool(out.write, chunk)
        result = await run_in_threadpool(
            backups.import_store, platform, app, name, file, replace=replace, keep_previous=keep_previous
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**result.to_dict(), "file": None}
