"""Testing mode and the names of test copies and templates.

In testing mode (``STOREKEEPER_TESTING=1``) every store an app asks for
resolves to its *test copy* on the same service:

=====================  ==========================================
what                   database name
=====================  ==========================================
real store             ``<package>_<name>``
template               ``tpl_<package>_<name>``
test copy              ``test_<package>_<name>``
test copy, xdist gwN   ``test<N>_<package>_<name>``
spare copy             ``test00[<N>]_<package>_<name>``
discarded copy         ``test01[<N>]_<package>_<name>``
=====================  ==========================================

A *spare* is the next test copy, cloned in the background while a test
runs, so the next test's fresh copy is a rename away; the copy it replaces is
renamed out of the way and dropped in the background. (Worker numbers have no
leading zeros, so ``test00…`` and ``test01…`` cannot clash with a worker's
copy: worker 0's is ``test0_…``.)

App packages may not start with ``test`` or ``tpl`` followed by ``_``, a
digit or nothing (see ``storekeeper.backends.names``), so a real store's name can
never equal a test copy's or a template's.

A derived name longer than PostgreSQL's 63 bytes gets a deterministic short
form: its first 54 bytes, ``_`` and 8 hex digits of its BLAKE2b hash. Never a
silent truncation by the server.
"""

from __future__ import annotations

import hashlib
import os
import re

from storekeeper.backends.names import MAX_IDENTIFIER_BYTES, database_name
from storekeeper.stores.mode import TESTING_ENV, testing_mode

WORKER_ENV = "PYTEST_XDIST_WORKER"
_WORKER_RE = re.compile(r"gw(\d{1,4})\Z")


def worker_id() -> str | None:
    """Return the pytest-xdist worker number (``"0"`` for ``gw0``) when running under xdist."""
    match = _WORKER_RE.match(os.environ.get(WORKER_ENV, ""))
    return match.group(1) if match else None


def short_form(name: str) -> str:
    """Return ``name``, or its deterministic short form when it exceeds 63 bytes."""
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{name[: MAX_IDENTIFIER_BYTES - 9].rstrip('_')}_{digest}"


def template_name(package: str, name: str) -> str:
    """Return the template database name of a store."""
    database_name(package, name)  # validates both parts
    return short_form(f"tpl_{package}_{name}")


def copy_name(package: str, name: str, worker: str | None = None) -> str:
    """Return the test copy's database name of a store (per xdist worker)."""
    database_name(package, name)
    worker = worker if worker is not None else worker_id()
    return short_form(f"test{worker or ''}_{package}_{name}")


def spare_name(package: str, name: str, worker: str | None = None) -> str:
    """Return the name of the spare copy cloned ahead of a store's next fresh copy."""
    database_name(package, name)
    worker = worker if worker is not None else worker_id()
    return short_form(f"test00{worker or ''}_{package}_{name}")


def discard_name(package: str, name: str, worker: str | None = None) -> str:
    """Return the name a replaced test copy gets while it is dropped in the background."""
    database_name(package, name)
    worker = worker if worker is not None else worker_id()
    return short_form(f"test01{worker or ''}_{package}_{name}")


#: PostgreSQL regular expressions matching every test copy / template name (any worker, any app).
COPY_REGEX = r"^test[0-9]*_"
TEMPLATE_REGEX = r"^tpl_"

__all__ = [
    "COPY_REGEX",
    "TEMPLATE_REGEX",
    "TESTING_ENV",
    "copy_name",
    "discard_name",
    "short_form",
    "spare_name",
    "template_name",
    "testing_mode",
    "worker_id",
]
