"""``/admin/login`` and ``/admin/logout``: sign in with a password (throttled), sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from storekeeper.errors import PortalError
from storekeeper.portal import auth
from storekeeper.portal.deps import PlatformDep
from storekeeper.portal.ui.deps import FormData, SignedForm, check_csrf
from storekeeper.portal.ui.pages import PREFIX, PageRoute, redirect, render

router = APIRouter(route_class=PageRoute)


def _safe_next(target: str | None) -> str:
    """Return ``target`` when it is a page of this admin, else the home page (no open redirects, no loops)."""
    if (
        target
        and target.startswith(f"{PREFIX}/")
        and "\\" not in target
        and not target.startswith((f"{PREFIX}/login", f"{PREFIX}/logout"))
    ):
        return target
    return f"{PREFIX}/"


@router.get("/login")
def login_page(request: Request, platform: PlatformDep, next: str | None = None) -> Response:
    """Show the sign-in form (or go on, when already signed in)."""
    if auth.session_principal(request, platform) is not None:
        return redirect(request, _safe_next(next))
    return render(request, "login.html", next=_safe_next(next), username="")


@router.post("/login")
def login(request: Request, platform: PlatformDep, form: FormData) -> Response:
    """Check the password and start a session; 401 or 429 show on the form."""
    check_csrf(request, form)
    username = form.get("username", "").strip()
    target = _safe_next(form.get("next"))
    try:
        user = auth.sign_in(platform, username, form.get("password", ""), client=auth.client_address(request))
    except PortalError as err:
        headers = {"Retry-After": err.headers["Retry-After"]} if "Retry-After" in err.headers else None
        hint = err.hint if err.status == 429 else "check both, and try again"
        return render(
            request,
            "login.html",
            status=err.status,
            headers=headers,
            next=target,
            username=username,
            error={"message": err.message, "hint": hint, "status": err.status},
        )
    response = redirect(request, target, f"Signed in as {user.username}.")
    auth.start_session(response, request, platform, user)
    return response


@router.post("/logout")
def logout(request: Request, platform: PlatformDep, form: SignedForm) -> Response:
    """End the session: its record is deleted, so the cookie no longer signs anyone in."""
    response = redirect(request, f"{PREFIX}/login", "Signed out.")
    auth.end_session(response, request, platform)
    return response
