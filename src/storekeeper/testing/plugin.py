"""The pytest plugin (entry point ``pytest11``: ``storekeeper``).

Options, each both a command-line flag and an ini key:

``--storekeeper-scope`` / ``storekeeper_scope``
    scope of store copies made by ``persistent_store`` fixtures (function, module, session).
``--rebuild-templates`` / ``storekeeper_rebuild_templates``
    rebuild every template once in this run, even if its code hash matches.

When ``storekeeper test APP`` runs the tests (it sets ``STOREKEEPER_TESTING=1``
and ``STOREKEEPER_TEST_APPS=APP``), the controlling process first drops that
app's test copies left by a crashed run. Two runs of the same app's tests
against the same service at the same time would share copy names: run them
on different services.
"""

from __future__ import annotations

import os

import pytest

from storekeeper.testing.fixtures import SCOPE_HELP, StoreCopy, persistent_store
from storekeeper.testing.names import TESTING_ENV, worker_id

#: Set by ``storekeeper test APP``: the apps whose leftover copies the run may drop at its start.
TEST_APPS_ENV = "STOREKEEPER_TEST_APPS"

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
    apps = [a for a in os.environ.get(TEST_APPS_ENV, "").split(",") if a]
    if os.environ.get(TESTING_ENV) != "1" or worker_id() is not None or not apps:
        return
    from storekeeper.errors import StorekeeperError
    from storekeeper.platform import load_platform
    from storekeeper.testing import copies

    try:
        # Only the apps under test: another app's tests may be running against the same server.
        copies.clean_all(load_platform(), packages=apps)
    except StorekeeperError:
        pass  # no platform yet: nothing can have been left behind


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from storekeeper.testing import copies, fixtures

    if fixtures.session_copies:
        fixtures.drop_session_copies()
    copies.drop_spares()
