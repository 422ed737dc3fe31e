"""The pytest plugin (entry point ``pytest11``: ``storekeeper``).

Options, each both a command-line flag and an ini key:

``--storekeeper-scope`` / ``storekeeper_scope``
    scope of store copies made by ``persistent_store`` fixtures (function, module, session).
``--rebuild-templates`` / ``storekeeper_rebuild_templates``
    rebuild every template once in this run, even if its code hash matches.

When the run is in testing mode (``storekeeper test`` sets
``STOREKEEPER_TESTING=1``), the controlling process drops test copies left by
a crashed run before any test starts.
"""

from __future__ import annotations

import os

import pytest

from storekeeper.testing.fixtures import SCOPE_HELP, StoreCopy, persistent_store
from storekeeper.testing.names import TESTING_ENV, worker_id

REBUILD_HELP = "Rebuild storekeeper's store templates once in this run, even when their code is unchanged."
SCOPES = ("function", "module", "session")

__all__ = ["StoreCopy", "persistent_store"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("storekeeper", "storekeeper persistent store copies")
    group.addoption("--storekeeper-scope", dest="storekeeper_scope", choices=SCOPES, default=None, help=SCOPE_HELP)
    group.addoption("--rebuild-templates", dest="storekeeper_rebuild_templates", action="store_true", default=False, help=REBUILD_HELP)
    parser.addini("storekeeper_scope", SCOPE_HELP, default="function")
    parser.addini("storekeeper_rebuild_templates", REBUILD_HELP, type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    from storekeeper.testing import copies

    if config.getoption("storekeeper_rebuild_templates") or config.getini("storekeeper_rebuild_templates"):
        copies.rebuild_templates = True


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get(TESTING_ENV) != "1" or worker_id() is not None:
        return
    from storekeeper.errors import StorekeeperError
    from storekeeper.platform import load_platform
    from storekeeper.testing import copies

    try:
        copies.clean_all(load_platform())
    except StorekeeperError:
        pass  # no platform yet: nothing can have been left behind


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from storekeeper.testing import copies, fixtures

    if fixtures.session_copies:
        fixtures.drop_session_copies()
    copies.drop_spares()
