"""Rendering the web admin's pages: templates, flash messages, redirects, and errors as HTML pages.

Every page goes through :func:`render`, which adds what every template needs
(the signed-in user, a CSRF token for its forms, the flash message left by the
previous request) and headers that keep the page private to this browser
(``Cache-Control: no-store``, a strict Content-Security-Policy: scripts and
styles only from ``/admin/static``).

Routes use :class:`PageRoute`, which turns what the routes raise into pages:
:class:`SignInRequired` into a redirect to the sign-in page, a
:class:`~storekeeper.errors.StorekeeperError` into an error page with its
message and hint and its HTTP status, anything else into a bare 500 page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from storekeeper import __version__
from storekeeper.errors import PortalError, StorekeeperError
from storekeeper.portal import auth
from storekeeper.portal.limits import BodyTooLarge

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/admin"

FLASH_COOKIE = "storekeeper_flash"
#: Scripts, styles and fetches from this portal only; no inline script, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

log = logging.getLogger("storekeeper.portal")


class SignInRequired(Exception):
    """The request has no valid session: send the browser to the sign-in page.

    Not a :class:`~storekeeper.errors.StorekeeperError` on purpose: no user ever
    sees it as an error. It is the web admin's control-flow signal, which
    :class:`PageRoute` turns into a redirect (the API's 401 is
    :meth:`PortalError.unauthenticated <storekeeper.errors.PortalError.unauthenticated>`).
    """


# -- templates -----------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    if moment.tzinfo is None:  # SQLite gives naive datetimes; they were stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _dotted(path: str) -> Markup:
    """Let a long dotted path (an initializer) wrap after its dots, not mid-word."""
    return Markup(".<wbr>").join(escape(part) for part in path.split("."))


_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.filters["size"] = _size
_env.filters["dotted"] = _dotted
_env.globals.update(version=__version__, prefix=PREFIX, csrf_field=auth.CSRF_FIELD)


# -- flash messages -------------------------------------------------------------------------


def _flash_serializer(request: Request) -> URLSafeSerializer:
    config = request.app.state.portal.config
    return URLSafeSerializer(config.secret_key, salt="storekeeper.portal.flash")


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = _flash_serializer(request).loads(raw)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def redirect(
    request: Request, url: str, message: str | None = None, *, kind: str = "ok", hint: str | None = None
) -> RedirectResponse:
    """Redirect (303, so the browser GETs) and leave a message for the next page to show."""
    response = RedirectResponse(url, status_code=303)
    if message:
        value = _flash_serializer(request).dumps({"kind": kind, "message": message, "hint": hint or ""})
        response.set_cookie(
            FLASH_COOKIE,
            value,
            max_age=60,
            httponly=True,
            samesite="lax",
            path=PREFIX,
            secure=request.url.scheme == "https",
        )
    return response


# -- rendering ------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    section: str = "",
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the signed-in user, a CSRF token for its forms, and any flash message."""
    cookies = Response()
    token = auth.csrf_token(request, cookies)
    flash = _read_flash(request)
    html = _env.get_template(template).render(
        request=request,
        user=getattr(request.state, "principal", None),
        csrf_token=token,
        flash=flash,
        section=section,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    for value in cookies.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", value)
    if flash is not None or FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX, httponly=True, samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    return response


def error_page(request: Request, err: StorekeeperError) -> HTMLResponse:
    """Render an error as a page: its message, its hint, its status."""
    headers = {k: v for k, v in (getattr(err, "headers", None) or {}).items() if k.lower() == "retry-after"}
    return render(request, "error.html", status=err.status, headers=headers, error=err, title=_status_title(err.status))


def _status_title(status: int) -> str:
    return {
        400: "That did not work",
        403: "Not allowed",
        404: "Not found",
        409: "Refused",
        422: "Check the form",
        429: "Too many tries",
        503: "Not available",
    }.get(status, "Something went wrong")


def sign_in_url(request: Request) -> str:
    """The sign-in page, with the page to come back to."""
    target = request.url.path if request.method == "GET" else f"{PREFIX}/"
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    return f"{PREFIX}/login?next={quote(target, safe='')}"


class PageRoute(APIRoute):
    """A route whose failures are pages: sign-in redirects, error pages, never a traceback or JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except BodyTooLarge:  # refused before the page is considered: the same 413 document as everywhere
                raise
            except SignInRequired:
                return RedirectResponse(sign_in_url(request), status_code=303)
            except PortalError as err:
                if err.status == 401:
                    return RedirectResponse(sign_in_url(request), status_code=303)
                return await run_in_threadpool(error_page, request, err)
            except StorekeeperError as err:
                return await run_in_threadpool(error_page, request, err)
            except RequestValidationError:
                return await run_in_threadpool(error_page, request, PortalError.invalid_page_request())
            except Exception as exc:  # the one place that turns the unexpected into a page
                log.error("%s %s raised", request.method, request.url.path, exc_info=exc)
                return await run_in_threadpool(error_page, request, PortalError.unexpected())

        return page_handler
