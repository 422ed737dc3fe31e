"""``/api/v1/apps``: installed apps, their settings (assign, reset), syncing and adopting their stores."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from storekeeper import apps, stores
from storekeeper.portal import jobs
from storekeeper.portal.api.models import (
    REACHES_SERVER,
    AdoptOut,
    AdoptRequest,
    AppList,
    AppOut,
    AppProblemOut,
    Assign,
    JobOut,
    SettingOut,
    SyncRequest,
    problem_responses,
)
from storekeeper.portal.deps import AdminDep, CurrentUser, PlatformDep

router = APIRouter(prefix="/apps", tags=["apps"])


@router.get("", response_model=AppList)
def list_apps(platform: PlatformDep, _: CurrentUser) -> AppList:
    """List apps with their settings and state, and entry points that failed to load."""
    infos, problems = apps.list_apps(platform)
    return AppList(
        apps=[AppOut.of(a) for a in infos],
        problems=[AppProblemOut(entry_point=p.entry_point, message=p.message) for p in problems],
    )


@router.get("/{app}", response_model=AppOut)
def get_app(app: str, platform: PlatformDep, _: CurrentUser) -> AppOut:
    """Show one app with its settings and their stores' state."""
    return AppOut.of(apps.get_app(platform, app))


@router.get("/{app}/settings", response_model=list[SettingOut])
def list_settings(app: str, platform: PlatformDep, _: CurrentUser) -> list[SettingOut]:
    """List an app's settings (declared and dynamic)."""
    return [SettingOut.model_validate(s) for s in apps.list_settings(platform, app)]


@router.put("/{app}/settings/{setting}", response_model=SettingOut)
def assign_service(app: str, setting: str, body: Assign, platform: PlatformDep, _: AdminDep) -> SettingOut:
    """Plug a service into a setting."""
    return SettingOut.model_validate(apps.assign_service(platform, app, setting, body.service))


@router.delete("/{app}/settings/{setting}", response_model=SettingOut)
def reset_setting(app: str, setting: str, platform: PlatformDep, _: AdminDep) -> SettingOut:
    """Unplug a setting's service (refused while its store exists: drop the store first)."""
    return SettingOut.model_validate(apps.reset_setting(platform, app, setting))


@router.post("/{app}/sync", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def sync(app: str, response: Response, platform: PlatformDep, _: AdminDep, body: SyncRequest | None = None) -> JobOut:
    """Sync an app's stores (all, or one) in the background; poll the job named by Location."""
    body = body or SyncRequest()
    job = JobOut.of(jobs.submit_sync(platform, app, store=body.store, refresh=body.refresh, firsttime=body.firsttime))
    response.headers["Location"] = job.url
    return job


@router.post("/{app}/adopt", response_model=AdoptOut, responses=problem_responses(*REACHES_SERVER))
def adopt(app: str, platform: PlatformDep, _: AdminDep, body: AdoptRequest | None = None) -> AdoptOut:
    """Take over the databases another tool (Tethys) made for the app's settings, in place, data and all.

    Each assigned database setting's database (or ``store``'s) must exist with no storekeeper
    marker; it gets the store's own role as owner and this installation's marker. Refusals are
    per store (``ok`` false, with ``error`` and ``hint``); ``dry_run`` changes nothing. The next
    sync keeps the data and runs the initializers with ``first_time`` false.
    """
    body = body or AdoptRequest()
    return AdoptOut.of(
        stores.adopt_stores(platform, app, database=body.store, dry_run=body.dry_run), dry_run=body.dry_run
    )
