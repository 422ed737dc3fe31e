"""The links app's JSON API, served by the portal at ``/apps/links/`` (``App.router`` names it).

Routes (``GET`` is public, ``POST`` needs a portal API token)::

    GET  /apps/links/links?limit=50&cursor=NEXT   newest first: {"links": [...], "next": "..." | null}
    GET  /apps/links/links/{id}                   one link, or 404
    POST /apps/links/links  {"url": "https://…"}  201 + Location, or 400/401/415/422

Every request is **one SQL statement** on the ``primary_db`` store, run in
autocommit mode: PostgreSQL makes each statement its own transaction, so a
POST's ``INSERT … RETURNING`` is atomic (the row and the answer are both there,
or neither), and no request pays for ``BEGIN`` and ``COMMIT`` round trips. An
endpoint that writes more than one statement uses ``engine.begin()`` instead.
The statements are built once, at import, with bound parameters (no SQL is
ever built from strings), and answers are encoded with orjson.

The endpoints are ``async def`` and run their statement on the worker's event
loop, without a hop to a worker thread: each is one statement on the primary
key's index (a page with a ``LIMIT``, one row, one insert) that PostgreSQL
answers in well under a millisecond, and every connection this module uses has
a ``statement_timeout`` of :data:`STATEMENT_TIMEOUT_MS`, so a lock or a stalled
server holds up the worker's other requests for at most that long (the request
then gets 503 with ``Retry-After``). An endpoint that may run longer is written
``def``, which FastAPI runs in a worker thread. Errors are
problem documents (``application/problem+json``) with a ``hint``. Only the
portal imports this module, so commands such as ``storekeeper syncstores
links`` never import FastAPI or pydantic. The app developer guide's "Fast
endpoints" page measures what each of these choices saves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, func, insert, select

from links.app import STORE, App
from links.model import MAX_URL_LENGTH, Link
from links.validation import not_found, parse_cursor, parse_link_id, url_from_body
from storekeeper.portal.deps import CurrentUser

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: The longest one of this app's statements may run (or wait for a lock) before PostgreSQL cancels it.
STATEMENT_TIMEOUT_MS = 1000


# -- what the API shows in its OpenAPI schema (/docs) ---------------------------------


class LinkIn(BaseModel):
    """A link to save. Members other than ``url`` are ignored."""

    url: str = Field(
        max_length=MAX_URL_LENGTH,
        description="An http or https URL with a host, stored exactly as sent.",
        examples=["https://example.com/page"],
    )


class LinkOut(BaseModel):
    """A saved link."""

    id: int
    url: str
    created_at: datetime = Field(description="When it was saved (ISO 8601, UTC).")


class LinkPage(BaseModel):
    """One page of links, newest first."""

    links: list[LinkOut]
    next: str | None = Field(description="Pass as ?cursor= for the next (older) page; null on the last page.")


# -- routes ------------------------------------------------------------------------------

router = APIRouter()


def _problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for an error answered with a problem document."""
    return {"description": description, "content": {"application/problem+json": {}}}


#: A link's columns as the API shows them; created_at converted to UTC by PostgreSQL
#: (a timestamp without time zone, which orjson writes with "+00:00").
_COLUMNS = (Link.id, Link.url, func.timezone("UTC", Link.created_at))
#: Built once: executing a prebuilt statement skips building and hashing it per request.
_PAGE = select(*_COLUMNS).order_by(Link.id.desc()).limit(bindparam("n"))
_PAGE_BEFORE = _PAGE.where(Link.id < bindparam("before"))
_ONE = select(*_COLUMNS).where(Link.id == bindparam("id"))
_INSERT = insert(Link).values(url=bindparam("url")).returning(*_COLUMNS)


def connect() -> Connection:
    """Return a connection to the ``primary_db`` store in autocommit mode (use it in a ``with`` block).

    The engine is a cached lookup; the pool gives the connection back reset to
    its default (transactional) mode when the block ends. A pooled connection
    gets its ``statement_timeout`` the first time this app uses it (one round
    trip per connection, not per request: ``Connection.info`` lives as long as
    the pooled connection).
    """
    engine = App.get_persistent_store_database(STORE)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    if conn.info.get("links_timeout") != STATEMENT_TIMEOUT_MS:
        conn.exec_driver_sql(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
        conn.info["links_timeout"] = STATEMENT_TIMEOUT_MS
    return conn


def link_json(link_id: int, url: str, created_at: datetime) -> dict[str, Any]:
    """Return a link as the API shows it (``created_at`` a UTC datetime, naive or aware)."""
    return {"id": link_id, "url": url, "created_at": created_at}


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Encode ``content`` with orjson (naive datetimes are UTC) as an ``application/json`` response."""
    body = orjson.dumps(content, option=orjson.OPT_NAIVE_UTC)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


@router.get(
    "/links",
    response_model=LinkPage,
    summary="List links, newest first",
    responses={400: _problem("The cursor was not given out by this API.")},
)
async def list_links(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Links per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=64, description='The "next" value of the previous page.')] = None,
) -> Response:
    """List saved links, newest first, a page at a time.

    The first page has the newest links; its ``next`` value, passed back as
    ``cursor``, gives the following (older) page. Pages stay consistent while
    links are added: a new link never shifts or repeats what later pages show.
    A ``cursor`` not given out by this API is refused with 400; a ``limit``
    outside 1..200 with 422.
    """
    before = parse_cursor(cursor)
    with connect() as conn:
        if before is None:
            rows = conn.execute(_PAGE, {"n": limit + 1}).all()
        else:
            rows = conn.execute(_PAGE_BEFORE, {"n": limit + 1, "before": before}).all()
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return json_response({"links": [link_json(*row) for row in rows[:limit]], "next": next_cursor})


@router.get(
    "/links/{link_id}", response_model=LinkOut, summary="Get a link", responses={404: _problem("No such link.")}
)
async def get_link(link_id: str) -> Response:
    """Return the link with this id; 404 if there is none (also for ids that are not numbers)."""
    number = parse_link_id(link_id)
    row = None
    if number is not None:
        with connect() as conn:
            row = conn.execute(_ONE, {"id": number}).first()
    if row is None:
        raise not_found(link_id)
    return json_response(link_json(*row))


@router.post(
    "/links",
    status_code=201,
    response_model=LinkOut,
    summary="Save a link",
    responses={
        400: _problem("The url is missing or not an http(s) URL with a host, or the body is not a JSON object."),
        401: _problem("No valid API token."),
        415: _problem("The body is not JSON."),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": LinkIn.model_json_schema()}},
        }
    },
)
async def create_link(
    request: Request,
    _: CurrentUser,
    body: Annotated[Any, Body(include_in_schema=False)] = None,
) -> Response:
    """Save a link; any signed-in portal user may (viewers too). Answers 201 with the link and its Location.

    The body is a JSON object whose ``url`` is an http or https URL with a
    host, at most 2048 characters; anything else is refused with 400 (415 for
    a body that is not JSON, 422 for malformed JSON). The URL is stored exactly
    as sent.
    """
    url = url_from_body(body)
    with connect() as conn:  # one statement: the row and its id come back together, or nothing is stored
        created = link_json(*conn.execute(_INSERT, {"url": url}).one())
    location = f"{request.url.path.rstrip('/')}/{created['id']}"
    return json_response(created, status_code=201, headers={"Location": location})
