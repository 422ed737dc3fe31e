"""Background jobs: a sync asked for over HTTP runs in a thread and reports through the platform database.

A job's record (the ``jobs`` table) is the only channel between the worker
running it and whoever asks about it, so with ``storekeeper start --workers N``
any worker answers ``GET /api/v1/jobs/{id}``. The worker that accepted the
request runs the job in a daemon thread and appends each store's outcome to the
record as it finishes (``stores.sync_stores(on_result=...)``).

Life of a job::

    queued --thread starts--> running --every store ok--> succeeded
                                 '------any store failed / error--> failed

A worker that dies mid-job cannot finish its record; the next worker to start
on the same host marks such jobs failed (:func:`fail_lost_jobs`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storekeeper import apps, audit, stores
from storekeeper.errors import JobError, SettingError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import DATABASE, JOB_FAILED, QUEUED, RUNNING, SUCCEEDED, Job, utcnow

SYNC = "sync"
FINISHED = frozenset({SUCCEEDED, JOB_FAILED})

log = logging.getLogger("storekeeper.portal")


@dataclass(frozen=True)
class JobInfo:
    """A job as the API shows it."""

    id: str
    app: str
    kind: str
    status: str
    params: dict[str, Any]
    results: list[dict[str, Any]]
    error: str | None
    hint: str | None
    actor: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        app=job.app,
        kind=job.kind,
        status=job.status,
        params=dict(job.params or {}),
        results=list(job.results or []),
        error=job.error,
        hint=job.hint,
        actor=job.actor,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def worker_name() -> str:
    """Name this process as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def get_job(platform: Platform, job_id: str) -> JobInfo:
    """Return one job."""
    with platform.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobError.not_found(job_id)
        return _info(job)


def list_jobs(platform: Platform, *, app: str | None = None, limit: int = 20) -> list[JobInfo]:
    """Return the newest jobs, optionally of one app."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if app:
        stmt = stmt.where(Job.app == app)
    with platform.session() as session:
        return [_info(j) for j in session.scalars(stmt)]


def submit_sync(
    platform: Platform, app: str, *, store: str | None = None, refresh: bool = False, firsttime: bool = False
) -> JobInfo:
    """Check the app (and store), record a queued sync job and start it in a background thread."""
    info = apps.get_app(platform, app)  # an unknown app fails here, before any job exists
    if store is not None:
        names = [s.name for s in info.settings if s.kind == DATABASE and not s.orphaned]
        if store not in names:
            raise SettingError.not_found(app, store, names)
    params = {"store": store, "refresh": refresh, "firsttime": firsttime}
    actor = audit.current_actor()
    with platform.session() as session:
        job = Job(
            id=uuid.uuid4().hex,
            app=app,
            kind=SYNC,
            status=QUEUED,
            params=params,
            results=[],
            actor=actor,
            worker=worker_name(),
        )
        session.add(job)
        session.flush()
        audit.record(session, "job.submit", app, detail=f"sync job {job.id}: {_describe(params)}")
        queued = _info(job)
    thread = threading.Thread(
        target=_run_sync,
        args=(platform, queued.id, app, params, actor),
        name=f"storekeeper-job-{queued.id[:8]}",
        daemon=True,
    )
    _threads.add(thread)
    thread.start()
    return queued


def _describe(params: dict[str, Any]) -> str:
    parts = [f"store {params['store']}" if params.get("store") else "every store"]
    parts += [flag for flag in ("refresh", "firsttime") if params.get(flag)]
    return ", ".join(parts)


_threads: set[threading.Thread] = set()


def wait_for_jobs(timeout: float) -> None:
    """Give this process's running jobs up to ``timeout`` seconds to finish (on shutdown)."""
    deadline = time.monotonic() + timeout
    for thread in list(_threads):
        thread.join(max(0.0, deadline - time.monotonic()))


def _update(platform: Platform, job_id: str, **values: Any) -> None:
    with platform.session() as session:
        job = session.get(Job, job_id)
        if job is not None:
            for key, value in values.items():
                setattr(job, key, value)


def _run_sync(platform: Platform, job_id: str, app: str, params: dict[str, Any], actor: str) -> None:
    results: list[dict[str, Any]] = []

    def progress(result: stores.SyncResult) -> None:
        results.append(_jsonable(result.to_dict()))
        _update(platform, job_id, results=list(results))

    try:
        with audit.acting_as(actor):
            _update(platform, job_id, status=RUNNING, started_at=utcnow())
            if params.get("refresh"):  # the stores' data is exported first; nothing is dropped if that fails
                from storekeeper.stores import backups

                store = params.get("store")
                backups.backup_before(platform, app, [store] if store else None, backups.default_dir(platform))
            stores.sync_stores(
                platform,
                [app],
                database=params.get("store"),
                refresh=bool(params.get("refresh")),
                first_time=bool(params.get("firsttime")),
                on_result=progress,
            )
        failed = [r for r in results if not r["ok"]]
        if failed:
            first = failed[0]
            _update(
                platform,
                job_id,
                status=JOB_FAILED,
                finished_at=utcnow(),
                error=f"{len(failed)} of {len(results)} store(s) failed; first: {first['store']}: {first['error']}",
                hint=first.get("hint"),
            )
        else:
            _update(platform, job_id, status=SUCCEEDED, finished_at=utcnow())
    except StorekeeperError as err:
        _update(platform, job_id, status=JOB_FAILED, finished_at=utcnow(), error=err.message, hint=err.hint)
    except Exception:
        log.exception("sync job %s of app %s raised", job_id, app)
        try:
            _update(
                platform,
                job_id,
                status=JOB_FAILED,
                finished_at=utcnow(),
                error="The job hit an unexpected error.",
                hint="look in the portal's log for the traceback",
            )
        except Exception:  # the platform database itself is gone: nothing more to record
            log.exception("cannot record the failure of job %s", job_id)
    finally:
        _threads.discard(threading.current_thread())


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in data.items()}


def fail_lost_jobs(platform: Platform) -> int:
    """Mark failed the unfinished jobs of dead worker processes on this host; return how many."""
    host = socket.gethostname()
    lost = 0
    with platform.session() as session:
        for job in session.scalars(select(Job).where(Job.status.in_((QUEUED, RUNNING)))):
            job_host, _, pid = job.worker.rpartition(":")
            if job_host != host or not pid.isdigit() or _alive(int(pid)):
                continue
            job.status, job.finished_at = JOB_FAILED, utcnow()
            job.error = f"The portal worker running this job ({job.worker}) stopped before it finished."
            job.hint = f"sync again: POST /api/v1/apps/{job.app}/sync  (or: storekeeper syncstores {job.app})"
            lost += 1
    return lost


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
