"""Every problem document's title is written for a user: by status, never an error class's docstring.

Titles used to be the first line of the error class's docstring ("Base of every error storekeeper
raises on purpose.", "A request the portal itself refuses: ..."), and an app's error class titled
its 415 "A gage (or file) ... does not exist.".
"""

from __future__ import annotations

import inspect

import pytest
from links import validation as links_errors
from stream_gages import routes as gages_routes

from storekeeper import errors
from storekeeper.portal.problems import TITLES, error_response, title_for
from tests.portal.conftest import problem


def _error_classes() -> list[type[errors.StorekeeperError]]:
    found: list[type[errors.StorekeeperError]] = []
    for module in (errors, links_errors, gages_routes):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, errors.StorekeeperError) and cls not in found:
                found.append(cls)
    return found


CLASSES = _error_classes()


def test_the_error_classes_are_found() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"StorekeeperError", "PortalError", "AppError", "LinkRequestError", "GageError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("status", [None, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503])
def test_no_title_comes_from_a_docstring(cls: type[errors.StorekeeperError], status: int | None) -> None:
    try:
        err = cls("what happened", hint="what to do", status=status)
    except TypeError:  # an error with its own constructor (ServerError): made without the keywords
        err = cls.__new__(cls)
        errors.StorekeeperError.__init__(err, "what happened", hint="what to do", status=status)
    doc = error_response(err).body.decode()
    title = title_for(err.status)
    assert f'"title":"{title}"' in doc
    first_line = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    assert not first_line or first_line not in doc
    assert len(title) <= 30 and not title.endswith(".")


def test_titles_by_status() -> None:
    assert [title_for(s) for s in (401, 403, 404, 409, 415, 422, 429)] == [
        "Not signed in",
        "Not allowed",
        "Not found",
        "Conflict",
        "Unsupported content type",
        "Invalid input",
        "Too many sign-in attempts",
    ]
    assert title_for(418) == "I'm a Teapot"  # not in the table: the status phrase
    assert all(t and t[0].isupper() for t in TITLES.values())


def test_titles_of_served_problems(anon, viewer, admin) -> None:  # type: ignore[no-untyped-def]
    assert problem(anon.get("/api/v1/apps"), 401)["title"] == "Not signed in"
    assert problem(viewer.post("/api/v1/services", json={}), 403)["title"] == "Not allowed"
    assert problem(admin.get("/api/v1/services/nope"), 404)["title"] == "Not found"
    assert problem(admin.get("/api/v1/no-such-thing"), 404)["title"] == "Not found"
    assert problem(admin.post("/api/v1/services", json={"name": 5}), 422)["title"] == "Invalid input"
    assert problem(admin.delete("/api/v1/apps"), 405)["title"] == "Method not allowed"
    throttled = error_response(errors.PortalError.throttled("admin", 30)).body.decode()
    assert '"title":"Too many sign-in attempts"' in throttled
