"""``/api/v1/apps/{app}/stores/{name}/export``: download a store's backup file (admins only)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

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
