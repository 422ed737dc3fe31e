"""What the web admin's routes ask for: ``PageUser``, ``SignedForm``, ``AdminForm``.

Example::

    @router.post("/services/{name}/delete")
    def delete_service(name: str, request: Request, platform: PlatformDep, form: AdminForm) -> Response:
        ...

* ``PageUser``: the user signed in by the session cookie; without one the page
  redirects to the sign-in page. Audit events of the request name that user.
* ``SignedForm``: the posted form of a signed-in user, with a valid CSRF token
  (403 page otherwise).
* ``AdminForm``: the same, and the user is an admin (403 page for a viewer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from storekeeper import audit
from storekeeper.errors import PortalError
from storekeeper.portal import auth
from storekeeper.portal.deps import get_platform
from storekeeper.portal.ui.pages import SignInRequired

Form = dict[str, str]


def _session_user(request: Request) -> auth.Principal:
    principal = auth.session_principal(request, get_platform(request))
    if principal is None:
        raise SignInRequired()
    return principal


async def page_user(request: Request) -> AsyncIterator[auth.Principal]:
    """Return the user signed in by the session cookie and attribute the request's audit events to them."""
    principal = await run_in_threadpool(_session_user, request)
    request.state.principal = principal
    with audit.acting_as(principal.actor):
        yield principal


PageUser = Annotated[auth.Principal, Depends(page_user)]


async def form_data(request: Request) -> Form:
    """Return the posted form's text fields (files are ignored: no page uploads any)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormData = Annotated[Form, Depends(form_data)]


def csrf_refused() -> PortalError:
    """The 403 of a form posted without this browser's CSRF token."""
    return PortalError.form_csrf_failed()


def check_csrf(request: Request, form: Form) -> None:
    """Raise the 403 unless ``form`` carries a CSRF token issued to this browser."""
    if not auth.verify_csrf(request, form.get(auth.CSRF_FIELD)):
        raise csrf_refused()


def signed_form(request: Request, user: PageUser, form: FormData) -> Form:
    """Return the form of a signed-in user once its CSRF token checks out."""
    check_csrf(request, form)
    return form


SignedForm = Annotated[Form, Depends(signed_form)]


def admin_form(request: Request, user: PageUser, form: SignedForm) -> Form:
    """Return the form when the user is an admin; a 403 page for a viewer."""
    if not user.is_admin:
        raise PortalError.viewer_form(user.username)
    return form


AdminForm = Annotated[Form, Depends(admin_form)]
