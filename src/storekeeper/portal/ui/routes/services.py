"""``/admin/services``: list, add, edit, test and delete persistent store services.

The password field is write-only: it is never put back into a form, and left
blank on the edit form it keeps the stored password.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from storekeeper import services
from storekeeper.errors import ServiceError, StorekeeperError
from storekeeper.platform import Platform
from storekeeper.portal.deps import PlatformDep
from storekeeper.portal.ui.deps import AdminForm, Form, PageUser, SignedForm
from storekeeper.portal.ui.pages import PREFIX, PageRoute, redirect, render

router = APIRouter(prefix="/services", route_class=PageRoute)

#: What a new service's form starts with.
DEFAULTS = {
    "name": "",
    "host": "",
    "port": str(services.DEFAULT_PORT),
    "username": "postgres",
    "maintenance_db": "postgres",
    "sslmode": "",
    "connect_timeout": "10",
    "pool_size": str(services.DEFAULT_POOL_SIZE),
}
NUMBERS = {"port": "Port", "connect_timeout": "Connect timeout", "pool_size": "Pool size"}
REQUIRED = {"host": "Host", "username": "Username", "maintenance_db": "Maintenance database"}


def _number(form: Form, key: str) -> int:
    text = form.get(key, "").strip()
    if not text.isdigit():
        raise ServiceError(f"{NUMBERS[key]} must be a whole number, not {text!r}.", hint=f"e.g. {DEFAULTS[key]}")
    return int(text)


def _values(form: Form) -> dict[str, Any]:
    """Return the service fields of a posted form (the password only when one was typed)."""
    for key, label in REQUIRED.items():
        if not form.get(key, "").strip():
            raise ServiceError(f"{label} is required.", hint=f"fill in {label.lower()} and save again")
    values: dict[str, Any] = {key: form[key].strip() for key in REQUIRED}
    values.update({key: _number(form, key) for key in NUMBERS})
    values["sslmode"] = form.get("sslmode", "").strip()  # "" on the edit form clears it
    if form.get("password"):
        values["password"] = form["password"]
    return values


def _shown(form: Form) -> dict[str, str]:
    """The submitted values to show again: everything but the password."""
    return {key: form.get(key, "") for key in DEFAULTS}


def _service_page(
    request: Request,
    platform: Platform,
    name: str,
    *,
    status: int = 200,
    error: StorekeeperError | None = None,
    report: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    info = services.get_service(platform, name)
    shown = values or {key: ("" if value is None else str(value)) for key, value in info.to_dict().items()}
    return render(
        request,
        "service.html",
        status=status,
        section="services",
        service=info,
        values=shown,
        error=error,
        report=report,
        sslmodes=services.SSLMODES,
    )


@router.get("")
def list_services(request: Request, platform: PlatformDep, _: PageUser) -> HTMLResponse:
    """List the services and the settings using each."""
    return render(request, "services.html", section="services", services=services.list_services(platform))


@router.get("/new")
def new_service(request: Request, _: PageUser) -> HTMLResponse:
    """Show the form to add a service."""
    return render(request, "service_new.html", section="services", values=DEFAULTS, sslmodes=services.SSLMODES)


@router.post("/new")
def create_service(request: Request, platform: PlatformDep, form: AdminForm) -> Response:
    """Register a service; on error show the form again, with the reason."""
    name = form.get("name", "").strip()
    try:
        values = _values(form)
        values.setdefault("password", None)
        values["sslmode"] = values["sslmode"] or None
        services.create_service(platform, name=name, **values)
    except StorekeeperError as err:
        return render(
            request,
            "service_new.html",
            status=err.status,
            section="services",
            values=_shown(form),
            error=err,
            sslmodes=services.SSLMODES,
        )
    return redirect(request, f"{PREFIX}/services/{name}", f'Service "{name}" added. Test its connection below.')


@router.get("/{name}")
def show_service(name: str, request: Request, platform: PlatformDep, _: PageUser) -> HTMLResponse:
    """Show a service's details and the form to edit it."""
    return _service_page(request, platform, name)


@router.post("/{name}")
def update_service(name: str, request: Request, platform: PlatformDep, form: AdminForm) -> Response:
    """Change a service's details (a blank password keeps the stored one)."""
    try:
        services.update_service(platform, name, **_values(form))
    except StorekeeperError as err:
        return _service_page(request, platform, name, status=err.status, error=err, values=_shown(form))
    return redirect(request, f"{PREFIX}/services/{name}", f'Service "{name}" saved.')


@router.post("/{name}/test")
def test_service(name: str, request: Request, platform: PlatformDep, _: SignedForm) -> HTMLResponse:
    """Connect to the service and show its version, privileges and PostGIS availability."""
    try:
        report = services.test_service(platform, name)
    except StorekeeperError as err:
        if err.status == 404:
            raise
        return _service_page(request, platform, name, status=err.status, error=err)
    return _service_page(request, platform, name, report=report)


@router.post("/{name}/rotate-password")
def rotate_password(name: str, request: Request, platform: PlatformDep, _: AdminForm) -> Response:
    """Give the service's user a new password (never shown); running apps follow it."""
    from storekeeper import localdb

    config = platform.config
    try:
        services.rotate_password(platform, name, on_rotated=lambda old, new: localdb.follow_rotation(config, old, new))
    except StorekeeperError as err:
        if err.status == 404:
            raise
        return _service_page(request, platform, name, status=err.status, error=err)
    return redirect(request, f"{PREFIX}/services/{name}", f'Service "{name}" has a new password.')


@router.post("/{name}/delete")
def delete_service(name: str, request: Request, platform: PlatformDep, _: AdminForm) -> Response:
    """Remove a service; refused (with the reason) while settings use it."""
    try:
        services.remove_service(platform, name)
    except StorekeeperError as err:
        if err.status == 404:
            raise
        return _service_page(request, platform, name, status=err.status, error=err)
    return redirect(request, f"{PREFIX}/services", f'Service "{name}" deleted.')
