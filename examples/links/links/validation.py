"""What the links API accepts, checked before anything reaches the database.

Every refusal is a :class:`~storekeeper.errors.StorekeeperError` subclass, which
the portal answers with a problem document (``application/problem+json``)
carrying the status, what is wrong (``detail``) and how to fix it (``hint``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from links.model import MAX_URL_LENGTH
from storekeeper.errors import StorekeeperError

#: Schemes a link may have.
SCHEMES = ("http", "https")
#: Largest value of a PostgreSQL bigint: the largest id and cursor there can be.
MAX_ID = 2**63 - 1
EXAMPLE_BODY = '{"url": "https://example.com/page"}'
_DIGITS = re.compile(r"[0-9]{1,19}")
#: ASCII control characters (NUL, tab, newline, ..., DEL): never part of a URL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LinkRequestError(StorekeeperError):
    """The request to the links app is not valid."""

    status = 400


class LinkNotFound(StorekeeperError):
    """There is no such link."""

    status = 404


def _bad_url(reason: str) -> LinkRequestError:
    return LinkRequestError(
        f"The url is not valid: {reason}.",
        hint=f"send an http or https URL with a host, at most {MAX_URL_LENGTH} characters, e.g. {EXAMPLE_BODY}",
    )


def check_url(value: object) -> str:
    """Return ``value`` unchanged if it is an acceptable link URL; raise :class:`LinkRequestError` otherwise.

    Accepted: a string of 1 to 2048 characters whose scheme is http or https
    (any case) and that names a host, without control characters or
    surrounding whitespace. The URL is stored exactly as sent: it is never
    normalized, and it never becomes part of an SQL statement.
    """
    if not isinstance(value, str):
        raise _bad_url(f"it must be a string, not {_json_type(value)}")
    if not value:
        raise _bad_url("it is empty")
    if len(value) > MAX_URL_LENGTH:
        raise _bad_url(f"it has {len(value)} characters, more than {MAX_URL_LENGTH}")
    if value != value.strip():
        raise _bad_url("it starts or ends with whitespace")
    if _CONTROL.search(value):
        raise _bad_url("it contains a control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800" from a JSON escape
        raise _bad_url("it is not valid Unicode text") from None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number in 0..65535)
    except ValueError:
        raise _bad_url("it cannot be parsed (check the host and port)") from None
    if parts.scheme not in SCHEMES:
        shown = f'"{parts.scheme}"' if parts.scheme else "none"
        raise _bad_url(f"its scheme is {shown}; only http and https are allowed")
    if not parts.hostname:
        raise _bad_url("it has no host")
    return value


def url_from_body(body: Any) -> str:
    """Return the checked ``url`` of a request body parsed as JSON (extra members are ignored).

    ``body`` is what FastAPI read: the parsed JSON for a JSON content type,
    raw ``bytes`` for any other content type, None when there was no body.
    """
    if body is None:
        raise LinkRequestError(
            "The request has no body.",
            hint=f"send a JSON object with Content-Type: application/json, e.g. {EXAMPLE_BODY}",
        )
    if isinstance(body, bytes | bytearray):
        error = LinkRequestError(
            "The body must be JSON (Content-Type: application/json).",
            hint=f"send a JSON object with Content-Type: application/json, e.g. {EXAMPLE_BODY}",
        )
        error.status = 415
        raise error
    if not isinstance(body, dict):
        raise LinkRequestError(
            f"The body must be a JSON object, not {_json_type(body)}.",
            hint=f"send e.g. {EXAMPLE_BODY}",
        )
    if "url" not in body:
        raise LinkRequestError('The body has no "url" member.', hint=f"send e.g. {EXAMPLE_BODY}")
    return check_url(body["url"])


def parse_cursor(value: str | None) -> int | None:
    """Return the id a ``cursor`` query parameter stands for (None: start at the newest link)."""
    if value is None:
        return None
    number = int(value) if _DIGITS.fullmatch(value) else 0
    if not 1 <= number <= MAX_ID:
        raise LinkRequestError(
            "The cursor is not valid.",
            hint='pass back the "next" value of the previous page unchanged, or leave cursor out for the first page',
        )
    return number


def parse_link_id(value: str) -> int | None:
    """Return the link id in a URL path segment, or None when it cannot be one (so no link has it)."""
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def not_found(value: str) -> LinkNotFound:
    """The 404 error for link ``value`` (a path segment: echoed only when it is a number)."""
    what = f"id {value}" if _DIGITS.fullmatch(value) else "that id (link ids are positive integers)"
    return LinkNotFound(
        f"There is no link with {what}.",
        hint="list the links with GET /apps/links/links",
    )


def _json_type(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
        str: "a string",
    }
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)
