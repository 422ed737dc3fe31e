"""The links app's JSON API, served by the portal at ``/apps/links/`` (``App.router`` names it).

Routes (``GET`` is public, ``POST`` needs a portal API token)::

    GET  /apps/links/links?limit=50&cursor=NEXT   newest first: {"links": [...], "next": "..." | null}
    GET  /apps/links/links/{id}                   one link, or 404
    POST /apps/links/links  {"url": "https://…"}  201 + Location, or 400/401/415/422

Each request is one transaction on the ``primary_db`` store (``with
Session.begin()``), and every value reaches PostgreSQL as a bound parameter of
an ORM statement: no SQL is ever built from strings. Errors are problem
documents (``application/problem+json``) with a ``hint``. Only the portal
imports this module, so commands such as ``storekeeper syncstores links``
never import FastAPI or pydantic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from links.app import STORE, App
from links.model import MAX_URL_LENGTH, Link
from links.validation import not_found, parse_cursor, parse_link_id, url_from_body
from storekeeper.portal.deps import CurrentUser

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


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


def sessions() -> sessionmaker[Session]:
    """Return the ``primary_db`` sessionmaker (a cached lookup, cheap on every request)."""
    return cast("sessionmaker[Session]", App.get_persistent_store_database(STORE, as_sessionmaker=True))


def link_json(link_id: int, url: str, created_at: datetime) -> dict[str, Any]:
    """Return a link as the API shows it."""
    return {"id": link_id, "url": url, "created_at": created_at.astimezone(UTC).isoformat()}


@router.get(
    "/links",
    response_model=LinkPage,
    summary="List links, newest first",
    responses={400: _problem("The cursor was not given out by this API.")},
)
def list_links(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Links per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=64, description='The "next" value of the previous page.')] = None,
) -> JSONResponse:
    """List saved links, newest first, a page at a time.

    The first page has the newest links; its ``next`` value, passed back as
    ``cursor``, gives the following (older) page. Pages stay consistent while
    links are added: a new link never shifts or repeats what later pages show.
    A ``cursor`` not given out by this API is refused with 400; a ``limit``
    outside 1..200 with 422.
    """
    before = parse_cursor(cursor)
    query = select(Link.id, Link.url, Link.created_at).order_by(Link.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(Link.id < before)
    with sessions().begin() as session:
        rows = session.execute(query).all()
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return JSONResponse({"links": [link_json(*row) for row in rows[:limit]], "next": next_cursor})


@router.get(
    "/links/{link_id}", response_model=LinkOut, summary="Get a link", responses={404: _problem("No such link.")}
)
def get_link(link_id: str) -> JSONResponse:
    """Return the link with this id; 404 if there is none (also for ids that are not numbers)."""
    number = parse_link_id(link_id)
    row = None
    if number is not None:
        with sessions().begin() as session:
            row = session.execute(select(Link.id, Link.url, Link.created_at).where(Link.id == number)).first()
    if row is None:
        raise not_found(link_id)
    return JSONResponse(link_json(*row))


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
def create_link(
    request: Request,
    _: CurrentUser,
    body: Annotated[Any, Body(include_in_schema=False)] = None,
) -> JSONResponse:
    """Save a link; any signed-in portal user may (viewers too). Answers 201 with the link and its Location.

    The body is a JSON object whose ``url`` is an http or https URL with a
    host, at most 2048 characters; anything else is refused with 400 (415 for
    a body that is not JSON, 422 for malformed JSON). The URL is stored exactly
    as sent.
    """
    url = url_from_body(body)
    with sessions().begin() as session:
        link = Link(url=url)
        session.add(link)
        session.flush()  # INSERT ... RETURNING id, created_at
        created = link_json(link.id, link.url, link.created_at)
    location = f"{request.url.path.rstrip('/')}/{created['id']}"
    return JSONResponse(created, status_code=201, headers={"Location": location})
