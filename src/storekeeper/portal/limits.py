"""What the portal takes from a client before it looks at a request: body size, proxy headers.

* **Body limit**: a request body larger than ``portal.max_body_bytes`` is refused
  with 413 (a problem document). A declared ``Content-Length`` over the limit is
  refused before anything is read; a chunked body (no ``Content-Length``) is
  counted as it streams in, and refused as soon as it passes the limit, so no
  more than the limit (plus one chunk) is ever held in memory.
* **Proxy headers**: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed
  only from the addresses in ``portal.forwarded_allow_ips`` (uvicorn's
  ``ProxyHeadersMiddleware``); by default from nobody, so a client cannot pick
  the address the sign-in throttle counts its failures under.

Example::

    install_limits(app, config)     # in create_app, after the other middleware
"""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from storekeeper.config import Config, forwarded_allow_ips
from storekeeper.errors import PortalError
from storekeeper.portal.problems import error_response


class BodyTooLarge(HTTPException):
    """Raised by the limited ``receive`` once a body passes the limit.

    A FastAPI ``HTTPException``, so FastAPI's body parsing lets it through unchanged
    (it turns any other exception into a 400); its own handler answers the 413.
    """

    def __init__(self, limit: int, key: str = "portal.max_body_bytes") -> None:
        super().__init__(status_code=413, detail="Content Too Large")
        self.limit = limit
        self.key = key


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed Content-Length before we see it
    return None


#: Routes that take larger bodies than ``portal.max_body_bytes``: a store's backup file upload.
UPLOAD_PATH = re.compile(r"^/api/v1/apps/[^/]+/stores/[^/]+/import$")


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with a 413 problem document, counting as they stream.

    A path matching one of ``larger`` (pattern, limit, the setting that sets it) has that limit instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: tuple[tuple[re.Pattern[str], int, str], ...] = (),
        key: str = "portal.max_body_bytes",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path") or ""
        special = next(((size, key) for pattern, size, key in self.larger if pattern.match(path)), None)
        if special is not None:
            await BodyLimit(self.app, special[0], key=special[1])(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await too_large_response(self.max_bytes, scope.get("path"), self.key)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes, self.key)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:  # raised where no handler turned it into the response (an app's own ASGI code)
            if started:
                raise
            await too_large_response(self.max_bytes, scope.get("path"), self.key)(scope, receive, send)


def too_large_response(limit: int, path: str | None, key: str = "portal.max_body_bytes") -> JSONResponse:
    """The 413 problem document for a body over ``limit`` bytes (the setting ``key`` sets the limit)."""
    return error_response(PortalError.body_too_large(limit, key), path)


async def _body_too_large(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, BodyTooLarge)
    return too_large_response(err.limit, request.url.path, err.key)


def install_limits(app: FastAPI, config: Config) -> None:
    """Add the body limit and, when proxies are configured, the proxy-header middleware (outermost)."""
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_middleware(
        BodyLimit,
        max_bytes=config.portal_max_body_bytes,
        larger=((UPLOAD_PATH, config.backups_max_upload_bytes, "backups.max_upload_bytes"),),
    )
    proxies = forwarded_allow_ips(config.portal_forwarded_allow_ips)
    if proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
