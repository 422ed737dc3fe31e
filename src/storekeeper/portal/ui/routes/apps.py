"""``/admin/apps/{package}``: an app's settings and stores; assign services, sync, drop stores.

"Sync stores" starts the same background job as ``POST /api/v1/apps/{app}/sync``;
the page shows its per-store results, polling ``/api/v1/jobs/{id}`` while it runs.
A store with schema migrations shows its revision and pending revisions; its
"Apply" button starts that job for the store alone (a sync brings it to head).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from storekeeper import apps, services, stores
from storekeeper.errors import StoreError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.platform.models import DATABASE
from storekeeper.portal import jobs
from storekeeper.portal.deps import PlatformDep
from storekeeper.portal.ui.deps import AdminForm, PageUser
from storekeeper.portal.ui.pages import PREFIX, PageRoute, redirect, render

router = APIRouter(prefix="/apps/{package}", route_class=PageRoute)


def _job(platform: Platform, package: str, job_id: str | None) -> jobs.JobInfo | None:
    """The job asked for (when it is this app's), else the app's newest one."""
    if job_id:
        try:
            job = jobs.get_job(platform, job_id)
        except StorekeeperError:
            job = None
        if job is not None and job.app == package:
            return job
    newest = jobs.list_jobs(platform, app=package, limit=1)
    return newest[0] if newest else None


def _app_page(
    request: Request,
    platform: Platform,
    package: str,
    *,
    job_id: str | None = None,
    status: int = 200,
    error: StorekeeperError | None = None,
) -> HTMLResponse:
    info = apps.get_app(platform, package)
    found = {s.name: s for s in stores.list_stores(platform, package, discover=False)}
    settings = [s for s in info.settings if not s.dynamic]
    dynamic = [found[s.name] for s in info.settings if s.dynamic and s.name in found]
    try:
        schema = {m.store: m for m in stores.migration_status(platform, package)}
    except StorekeeperError:  # a broken script directory: the sync shows why; the page still loads
        schema = {}
    return render(
        request,
        "app.html",
        status=status,
        section="home",
        app=info,
        settings=settings,
        stores=found,
        dynamic=dynamic,
        schema=schema,
        services=[s.name for s in services.list_services(platform)],
        job=_job(platform, package, job_id),
        error=error,
        database=DATABASE,
    )


@router.get("")
def show_app(
    package: str, request: Request, platform: PlatformDep, _: PageUser, job: str | None = None
) -> HTMLResponse:
    """Show the app's settings, their stores' state, the last sync and the dynamic stores."""
    return _app_page(request, platform, package, job_id=job)


@router.post("/settings/{setting}")
def assign_service(package: str, setting: str, request: Request, platform: PlatformDep, form: AdminForm) -> Response:
    """Plug the chosen service into a setting (or unplug it, for "none")."""
    service = form.get("service", "").strip()
    try:
        if service:
            apps.assign_service(platform, package, setting, service)
        else:
            apps.reset_setting(platform, package, setting)
    except StorekeeperError as err:  # an unknown app fails again in _app_page, as a 404 page
        return _app_page(request, platform, package, status=err.status, error=err)
    done = (
        f'Setting "{setting}" now uses service "{service}".' if service else f'Setting "{setting}" has no service now.'
    )
    return redirect(request, f"{PREFIX}/apps/{package}", done)


@router.post("/sync")
def sync(package: str, request: Request, platform: PlatformDep, form: AdminForm) -> Response:
    """Start syncing the app's stores in the background and show its progress."""
    try:
        job = jobs.submit_sync(
            platform,
            package,
            store=form.get("store") or None,
            refresh=form.get("refresh") == "on",
            firsttime=form.get("firsttime") == "on",
        )
    except StorekeeperError as err:
        return _app_page(request, platform, package, status=err.status, error=err)
    return redirect(request, f"{PREFIX}/apps/{package}?job={job.id}#sync")


@router.post("/rotate-credentials")
def rotate_credentials(package: str, request: Request, platform: PlatformDep, _: AdminForm) -> Response:
    """Give the app's store roles new passwords; running apps follow them with no failed request."""
    try:
        results = stores.rotate_credentials(platform, package)
    except StorekeeperError as err:
        return _app_page(request, platform, package, status=err.status, error=err)
    failed = [r for r in results if not r.ok]
    if failed:
        problem = StoreError(
            "; ".join(f"{r.store}: {r.error}" for r in failed),
            hint=f"storekeeper stores rotate-credentials {package}",
        )
        return _app_page(request, platform, package, status=problem.status, error=problem)
    rotated = [r.store for r in results if r.action == "rotated"]
    done = f"New passwords for: {', '.join(rotated)}." if rotated else "No store has its own role to rotate."
    return redirect(request, f"{PREFIX}/apps/{package}", done)


@router.get("/stores/{name}/drop")
def confirm_drop(package: str, name: str, request: Request, platform: PlatformDep, _: PageUser) -> HTMLResponse:
    """Ask before dropping a store: its data is lost."""
    found = {s.name: s for s in stores.list_stores(platform, package)}
    if name not in found:
        raise StoreError.not_found(package, name, hint=f"the app's page lists its stores: {PREFIX}/apps/{package}")
    return render(request, "drop_store.html", section="home", app=apps.get_app(platform, package), store=found[name])


@router.post("/stores/{name}/drop")
def drop_store(package: str, name: str, request: Request, platform: PlatformDep, form: AdminForm) -> Response:
    """Drop a store's database and its data (exported into the home's backups/ first, unless the admin
    ticked "without a backup"); a dynamic store is forgotten."""
    from storekeeper.stores import backups

    try:
        saved = (
            []
            if form.get("skip_backup")
            else backups.backup_before(platform, package, [name], backups.default_dir(platform))
        )
        stores.drop_store(platform, package, name)
    except StorekeeperError as err:
        return _app_page(request, platform, package, status=err.status, error=err)
    note = f" Its data was saved in {saved[0].file}." if saved else ""
    return redirect(request, f"{PREFIX}/apps/{package}", f'Store "{name}" dropped.{note}')
