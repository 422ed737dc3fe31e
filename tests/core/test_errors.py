"""The error tree: one module, one base, a status fixed when an error is made, titles that read as titles."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import storekeeper
from storekeeper import errors
from storekeeper.errors import PortalError, ServerError, StorekeeperError

CLASSES = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_a_storekeeper_error_drawn_in_the_tree(cls: type[StorekeeperError]) -> None:
    assert issubclass(cls, StorekeeperError)
    assert f" {cls.__name__} " in f" {errors.__doc__} ".replace("\n", " ")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_first_docstring_line_reads_as_a_problem_title(cls: type[StorekeeperError]) -> None:
    title = (inspect.getdoc(cls) or "").splitlines()[0]  # the portal's problem "title"
    assert title[0].isupper() and title.endswith(".") and len(title) <= 90, title
    assert not title.startswith("Base"), title  # for the reader of the error, not of the code


def test_the_portal_still_exports_portal_error() -> None:
    from storekeeper.portal import problems

    assert problems.PortalError is PortalError


def test_server_error_keeps_its_shape() -> None:
    err = ServerError("It did not start.", hint="storekeeper db start", datadir=Path("/tmp/pgdata"))
    assert (err.status, err.hint, err.datadir, str(err)) == (
        503,
        "storekeeper db start",
        Path("/tmp/pgdata"),
        "It did not start.\nFix: storekeeper db start",
    )


def test_no_module_sets_the_status_of_an_error_after_making_it() -> None:
    """``status`` is given at construction (a class default or ``status=``), never assigned afterwards."""
    root = Path(storekeeper.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in targets):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    # the one exception: StorekeeperError.__init__ storing the status it is given
    assert found == [f"errors.py:{_line_of(errors.StorekeeperError.__init__, 'self.status = status')}"]


def _line_of(function: object, text: str) -> int:
    lines, start = inspect.getsourcelines(function)  # type: ignore[arg-type]
    return start + next(i for i, line in enumerate(lines) if text in line)
