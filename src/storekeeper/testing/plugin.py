"""The pytest plugin (entry point ``pytest11``: ``storekeeper``).

Options, each both a command-line flag and an ini key:

``--storekeeper-scope`` / ``storekeeper_scope``
    scope of store copies made by ``persistent_store`` fixtures (function, module, session).
``--rebuild-templates`` / ``storekeeper_rebuild_templates``
    rebuild every template once in this run, even if its code hash matches.

When ``storekeeper test APP`` runs the tests (it sets ``STOREKEEPER_TESTING=1``
and ``STOREKEEPER_TEST_APPS=APP``), the controlling process first claims the
app's test run on every service (a session advisory lock), then drops that
app's test copies left by a crashed run. Two runs of the same app's tests
against the same service at the same time would share copy names, so a second
run stops at once with an error saying so; run them on different services.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

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
    group.addoption(
        "--rebuild-templates",
        dest="storekeeper_rebuild_templates",
        action="store_true",
        default=False,
        help=REBUILD_HELP,
    )
    parser.addini("storekeeper_scope", SCOPE_HELP, default="function")
    parser.addini("storekeeper_rebuild_templates", REBUILD_HELP, type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    from storekeeper.testing import copies

    if config.getoption("storekeeper_rebuild_templates") or config.getini("storekeeper_rebuild_templates"):
        copies.set_rebuild_templates(True)


#: Connections holding this run's claims (session advisory locks), released when the run ends.
_claims: list[Any] = []


def _claim_run(apps: list[str]) -> None:
    """Hold, on every reachable service, an advisory lock per app under test for the whole run.

    Two runs of one app's tests on the same service would share test copy names,
    and the second run's clean-up would drop the first run's copies: the second
    run stops at once instead, saying why. A crashed run's locks go with its
    connections, so a claim never outlives its run.
    """
    from storekeeper.backends.postgresql import PostgresBackend, lock_key
    from storekeeper.errors import StorekeeperError
    from storekeeper.platform import load_platform
    from storekeeper.services import service_specs

    try:
        specs = service_specs(load_platform())
    except StorekeeperError:
        return  # no platform yet: nothing to share
    for spec in specs:
        try:
            conn = PostgresBackend(spec).coordination_connect()
        except StorekeeperError:
            continue  # unreachable: nothing can be shared there now
        _claims.append(conn)
        for app in apps:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(f"test-run:{app}"),)).fetchone()
            if not (row and row[0]):
                _release_claims()
                raise pytest.UsageError(
                    f'Another run of app "{app}"\'s tests is using service "{spec.name}" ({spec.where}); '
                    "two runs would share its test copies.\n"
                    "Fix: wait for that run to finish, or run these tests against another service "
                    f"(storekeeper app-settings set {app} SETTING OTHER_SERVICE)."
                )


def _release_claims() -> None:
    while _claims:
        _claims.pop().close()


def pytest_sessionstart(session: pytest.Session) -> None:
    apps = [a for a in os.environ.get(TEST_APPS_ENV, "").split(",") if a]
    if os.environ.get(TESTING_ENV) != "1" or worker_id() is not None or not apps:
        return
    from storekeeper.errors import StorekeeperError
    from storekeeper.platform import load_platform
    from storekeeper.testing import copies

    _claim_run(apps)  # before the clean-up below, which must not touch a live run's copies
    # Only the apps under test: another app's tests may be running against the same server.
    with contextlib.suppress(StorekeeperError):  # no platform yet: nothing can have been left behind
        copies.clean_all(load_platform(), packages=apps)


def pytest_unconfigure(config: pytest.Config) -> None:
    _release_claims()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from storekeeper.testing import copies, fixtures

    if fixtures.session_copies:
        fixtures.drop_session_copies()
    copies.drop_spares()
