"""Problem documents (RFC 9457): the one JSON shape of every error the portal answers with.

Every :class:`~storekeeper.errors.StorekeeperError` becomes::

    HTTP/1.1 404 Not Found
    Content-Type: application/problem+json

    {"type": "urn:storekeeper:problem:service-error", "title": "Not found",
     "status": 404, "detail": "Service \\"db1\\" does not exist.",
     "hint": "storekeeper services list ...", "service": "db1", "instance": "/api/v1/services/db1"}

Request validation errors become 422 documents listing each field and what is
wrong with it, without echoing the submitted values (they may hold a
password). Anything unexpected is a bare 500 document: the traceback goes to
the log, never to the client.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from storekeeper.errors import PortalError, StorekeeperError

#: PortalError lives in storekeeper.errors with every other error; it is re-exported here for the portal's modules.
__all__ = ["PROBLEM_JSON", "TITLES", "PortalError", "install_handlers", "problem_response", "title_for"]

PROBLEM_JSON = "application/problem+json"
#: Error fields that name the thing involved; copied into the document when present.
NAMED_FIELDS = ("app", "setting", "store", "service", "user", "job", "key")
TYPE_PREFIX = "urn:storekeeper:problem:"

log = logging.getLogger("storekeeper.portal")


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name.rstrip("_")).lower()


#: A problem document's title, by status: short, written for the person reading it (the
#: ``detail`` says what happened, the ``hint`` what to do). Never an error class's docstring.
TITLES = {
    400: "Invalid request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported content type",
    422: "Invalid input",
    428: "Confirmation required",
    429: "Too many sign-in attempts",
    500: "Internal error",
    502: "Database server error",
    503: "Not available right now",
    504: "Timed out",
}


def title_for(status: int) -> str:
    """Return the title of a problem document with this status."""
    return TITLES.get(status) or _phrase(status)


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    hint: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Return an ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or title_for(status),
        "status": status,
        "detail": detail or _phrase(status),
    }
    if hint:
        body["hint"] = hint
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(err: StorekeeperError, path: str | None = None) -> JSONResponse:
    """Map a storekeeper error to its problem document."""
    named = {key: err.fields[key] for key in NAMED_FIELDS if err.fields.get(key) is not None}
    return problem_response(
        err.status,
        title=title_for(err.status),
        detail=err.message,
        type_=TYPE_PREFIX + _kebab(type(err).__name__),
        hint=err.hint,
        instance=path,
        headers=getattr(err, "headers", None) or None,
        **{k: str(v) for k, v in named.items()},
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _storekeeper_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, StorekeeperError)
    if err.status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, err.message)
    return error_response(err, request.url.path)


async def _validation_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    # Only where and what: never "input" or "ctx", which echo the submitted values.
    errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in err.errors()]
    listing = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem_response(
        422,
        title=title_for(422),
        detail=f"The request is not valid: {listing}." if listing else "The request is not valid.",
        type_=TYPE_PREFIX + "validation-error",
        hint="fix the fields listed in errors; every endpoint's schema is at /docs",
        instance=request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, StarletteHTTPException)
    detail = err.detail if isinstance(err.detail, str) else _phrase(err.status_code)
    hint = None
    if err.status_code == 404 and detail == "Not Found":
        path = request.url.path
        detail = f"There is nothing at {path}."
        parts = path.split("/")
        if path.startswith("/apps/") and len(parts) > 2 and parts[2]:
            hint = f'app "{parts[2]}" serves what /docs lists under "app: {parts[2]}"'
        else:
            hint = "the API lives under /api/v1; its endpoints are listed at /docs"
    elif err.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
        allowed = {k.lower(): v for k, v in (err.headers or {}).items()}.get("allow", "?")
        hint = f"allowed: {allowed}; see /docs"
    return problem_response(
        err.status_code,
        detail=detail,
        hint=hint,
        instance=request.url.path,
        headers=dict(err.headers) if err.headers else None,
    )


async def _unexpected_error(request: Request, err: Exception) -> JSONResponse:
    log.error("%s %s raised", request.method, request.url.path, exc_info=err)
    return problem_response(
        500,
        title=title_for(500),
        detail="The portal hit an unexpected error; nothing about it is shown here.",
        type_=TYPE_PREFIX + "internal-error",
        hint="look in the portal's log (the process running storekeeper start) for the traceback",
        instance=request.url.path,
    )


def install_handlers(app: FastAPI) -> None:
    """Answer every error raised in ``app`` with a problem document."""
    app.add_exception_handler(StorekeeperError, _storekeeper_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
