"""Testing tools: testing mode, fast test copies of stores, and the pytest plugin.

Import the fixture factory from here in a test module or conftest::

    from storekeeper.testing import persistent_store

    example_db = persistent_store("my_first_app", "example_db")

    def test_gages(example_db):
        with example_db.sessionmaker() as session:
            ...

Nothing here imports pytest until a fixture factory is used. The core never
imports this package; it loads testing mode's implementation
(:data:`storekeeper.testing.copies.TESTING`) by name when ``STOREKEEPER_TESTING=1``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PortalClient", "StoreCopy", "persistent_store", "portal_client"]
_CLIENT = ("PortalClient", "portal_client")


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from storekeeper.testing import client

        return getattr(client, name)
    if name in __all__:
        from storekeeper.testing import fixtures

        return getattr(fixtures, name)
    raise AttributeError(name)
