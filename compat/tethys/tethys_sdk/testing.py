"""``TethysTestCase`` and ``is_testing_environment``, on storekeeper's test copies.

Run a Tethys app's tests with ``storekeeper test APP`` (it runs pytest, which
runs ``unittest`` test cases too). That command turns storekeeper's testing
mode on (``STOREKEEPER_TESTING=1``): every store the app asks for by name
resolves to its *test copy*, a database cloned from a template that the
store's initializer filled with ``first_time=True``, on the same service as the
real store. The real stores are never touched.

In a test case:

- ``create_test_persistent_stores_for_app(App)`` gives each of the app's
  database settings a fresh test copy (what Tethys does with
  ``refresh=True, force_first_time=True``); from then on
  ``App.get_persistent_store_database(name)`` (engine, URL or sessionmaker)
  returns the copy;
- ``destroy_test_persistent_stores_for_app(App)`` drops the app's test copies,
  dynamic ones the test made included.

Tethys names a test database ``tethys-testing_<database>``; storekeeper's
copy of store ``primary_db`` of app ``dam_inventory`` is
``test_dam_inventory_primary_db`` (``test<N>_…`` on pytest-xdist worker N).

Outside testing mode (plain ``pytest`` or ``python -m unittest`` without
``STOREKEEPER_TESTING=1``) both functions raise ``EnvironmentError``, as
Tethys's do outside its testing environment: they never make or drop anything
while store names resolve to the real stores. Tethys's own variable
(``TETHYS_TESTING_IN_PROGRESS``) does not turn storekeeper's testing mode on.
"""

from __future__ import annotations

import atexit
import os
import unittest
from typing import Any

from storekeeper.declaration import AppDeclaration
from storekeeper.stores.mode import TESTING_ENV, testing_mode

__all__ = ["TethysTestCase", "is_testing_environment"]

#: Tethys's own testing variable, named in the error when it is set but storekeeper's is not.
TETHYS_TESTING_ENV = "TETHYS_TESTING_IN_PROGRESS"
_cleanup = {"registered": False}


def is_testing_environment() -> bool:
    """Return True when store names resolve to test copies (storekeeper's testing mode, ``STOREKEEPER_TESTING=1``)."""
    return testing_mode()


def _require_testing(what: str) -> None:
    if is_testing_environment():
        return
    also = (
        f" ({TETHYS_TESTING_ENV} is set, but that is Tethys's variable: storekeeper does not read it)"
        if os.environ.get(TETHYS_TESTING_ENV)
        else ""
    )
    raise OSError(
        f"{what} runs only in storekeeper's testing mode, where store names resolve to test copies; "
        f"{TESTING_ENV} is not 1 in this process{also}. "
        "Fix: run the app's tests with: storekeeper test APP  (or set STOREKEEPER_TESTING=1)"
    )


def _app_package(app_class: Any, what: str) -> str:
    if not (isinstance(app_class, type) and issubclass(app_class, AppDeclaration)):
        raise TypeError(f"{what} takes the app's class (a TethysAppBase subclass), not {app_class!r}")
    package = app_class.package
    if not package:
        raise ValueError(f"{what}: app class {app_class.__name__} has no package")
    return str(package)


def _drop_spares_at_exit() -> None:
    """Drop the spare copies cloned in the background, when no pytest plugin will (``python -m unittest``)."""
    if not _cleanup["registered"]:
        from storekeeper.testing import copies

        atexit.register(copies.drop_spares)
        _cleanup["registered"] = True


class TethysTestCase(unittest.TestCase):
    """A Tethys test case on storekeeper: ``set_up``/``tear_down`` and the test-store helpers.

    ``setUp`` calls :meth:`set_up` and ``tearDown`` calls :meth:`tear_down`;
    override those two, as in Tethys. See the module docs for testing mode.

    Example::

        from tethys_sdk.testing import TethysTestCase
        from tethysapp.dam_inventory.app import DamInventory
        from tethysapp.dam_inventory.model import add_new_dam, get_all_dams


        class DamTests(TethysTestCase):
            def set_up(self):
                self.create_test_persistent_stores_for_app(DamInventory)

            def tear_down(self):
                self.destroy_test_persistent_stores_for_app(DamInventory)

            def test_add(self):
                add_new_dam(name="Deer Creek", owner="Reclamation", river="Provo", date_built="1941")
                self.assertEqual([d.name for d in get_all_dams()], ["Deer Creek"])
    """

    def setUp(self) -> None:
        self.set_up()

    def tearDown(self) -> None:
        self.tear_down()

    def set_up(self) -> None:
        """Override to prepare each test (Tethys's hook)."""

    def tear_down(self) -> None:
        """Override to clean up after each test (Tethys's hook)."""

    is_testing_environment = staticmethod(is_testing_environment)

    @staticmethod
    def create_test_persistent_stores_for_app(app_class: Any) -> None:
        """Give each of the app's database settings a fresh test copy, initialized with ``first_time=True``.

        Settings without a service are skipped when optional; a required one
        raises the error that names the command assigning it. Raises
        ``EnvironmentError`` outside testing mode.
        """
        what = "create_test_persistent_stores_for_app"
        package = _app_package(app_class, what)
        _require_testing(what)
        from storekeeper import discovery
        from storekeeper.app_settings import PersistentStoreDatabaseSetting
        from storekeeper.errors import SettingError
        from storekeeper.platform import load_platform
        from storekeeper.testing import copies, fixtures

        platform = load_platform()
        discovery.ensure_registered(platform, app_class)
        _drop_spares_at_exit()
        for setting in discovery.declared_settings(app_class):
            if not isinstance(setting, PersistentStoreDatabaseSetting):
                continue
            if copies.TESTING.target(platform, package, setting.name) is None:  # no service assigned
                if setting.required:
                    raise SettingError.unassigned(package, setting.name)
                continue
            fixtures.fresh_copy(package, setting.name, app_class)

    @staticmethod
    def destroy_test_persistent_stores_for_app(app_class: Any) -> None:
        """Drop every test copy of the app's stores (dynamic ones made in this process too).

        Idempotent. Raises ``EnvironmentError`` outside testing mode, so it
        can never drop a real store.
        """
        what = "destroy_test_persistent_stores_for_app"
        _app_package(app_class, what)
        _require_testing(what)
        for name in app_class.list_persistent_store_databases():
            _require_testing(what)  # checked again before every drop
            app_class.drop_persistent_store(name)

    # -- Tethys's Django helpers: not provided ------------------------------------------------

    @staticmethod
    def _django_only(name: str) -> NotImplementedError:
        return NotImplementedError(
            f"TethysTestCase.{name} belongs to Tethys's Django portal (users, requests, URLs); "
            "storekeeper-tethys provides only the persistent store parts of TethysTestCase. "
            "Test endpoints with storekeeper.testing.portal_client instead."
        )

    @staticmethod
    def create_test_user(*args: Any, **kwargs: Any) -> Any:
        """Not provided: Tethys's Django users (raises ``NotImplementedError``)."""
        raise TethysTestCase._django_only("create_test_user")

    @staticmethod
    def create_test_superuser(*args: Any, **kwargs: Any) -> Any:
        """Not provided: Tethys's Django users (raises ``NotImplementedError``)."""
        raise TethysTestCase._django_only("create_test_superuser")

    @staticmethod
    def get_test_client() -> Any:
        """Not provided: Tethys's Django test client (raises ``NotImplementedError``)."""
        raise TethysTestCase._django_only("get_test_client")

    @staticmethod
    def reverse(*args: Any, **kwargs: Any) -> Any:
        """Not provided: Django URL reversing (raises ``NotImplementedError``)."""
        raise TethysTestCase._django_only("reverse")
