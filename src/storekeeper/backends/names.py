"""Validate every name that may become an SQL identifier.

Names are checked here, before anything touches a server, and reach SQL only
as :class:`psycopg.sql.Identifier`. A bad name is refused with the rule it
breaks; nothing is ever silently truncated or rewritten.
"""

from __future__ import annotations

import re

from storekeeper.errors import InvalidNameError

#: PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by the server.
MAX_IDENTIFIER_BYTES = 63

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_SERVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
NAME_RULE = "lowercase letters, digits and _ only, starting with a letter"
#: App packages that could collide with test-copy (``test_…``, ``test0_…``) or template (``tpl_…``) names.
_RESERVED_PACKAGE_RE = re.compile(r"(test|tpl)(_|\d|\Z)")
#: App packages whose store roles (named ``<package>_<store>``) would start with ``pg_``, which
#: PostgreSQL reserves for its own roles (CREATE ROLE refuses them).
_PG_RESERVED_PACKAGE_RE = re.compile(r"pg(_|\Z)")
SERVICE_RULE = "letters, digits, '_', '.' and '-' only, starting with a letter or digit, at most 63 characters"


def _show(name: object) -> str:
    return repr(name) if isinstance(name, str) else f"{type(name).__name__} {name!r}"


def check_name(name: object, *, what: str) -> str:
    """Return ``name`` when it is a valid app package, setting or store name.

    ``what`` names the thing in the error ("app package", "setting", "store").
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidNameError(
            f"Invalid {what} name {_show(name)}: use {NAME_RULE} (pattern [a-z][a-z0-9_]*).",
            hint=f"rename the {what}, e.g. 'example_db'",
            name=name,
        )
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidNameError(
            f"Invalid {what} name {name!r}: at most {MAX_IDENTIFIER_BYTES} bytes.",
            hint=f"choose a shorter {what} name",
            name=name,
        )
    return name


def check_package(package: object) -> str:
    """Return ``package`` when it is a valid app package name (names rule, not reserved)."""
    check_name(package, what="app package")
    assert isinstance(package, str)
    if _RESERVED_PACKAGE_RE.match(package):
        raise InvalidNameError(
            f"Invalid app package name {package!r}: names starting with 'test' or 'tpl' followed by '_', "
            "a digit or nothing are reserved for test copies and templates.",
            hint="rename the app package",
            name=package,
        )
    if _PG_RESERVED_PACKAGE_RE.match(package):
        raise InvalidNameError(
            f"Invalid app package name {package!r}: a package named 'pg' or starting with 'pg_' would give its "
            "stores' roles names starting with 'pg_', which PostgreSQL reserves.",
            hint="rename the app package",
            name=package,
        )
    return package


def database_name(package: str, name: str) -> str:
    """Return the database name ``<package>_<name>`` after checking both parts and its length."""
    check_package(package)
    check_name(name, what="store")
    full = f"{package}_{name}"
    if len(full.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidNameError(
            f'Database name "{full}" for app "{package}" store "{name}" is '
            f"{len(full.encode())} bytes; PostgreSQL allows at most {MAX_IDENTIFIER_BYTES}.",
            hint=f"shorten the store name to at most {MAX_IDENTIFIER_BYTES - len(package) - 1} characters",
            app=package,
            name=name,
        )
    return full


def check_service_name(name: object) -> str:
    """Return ``name`` when it is a valid service name."""
    if not isinstance(name, str) or not _SERVICE_RE.match(name) or len(name) > MAX_IDENTIFIER_BYTES:
        raise InvalidNameError(
            f"Invalid service name {_show(name)}: use {SERVICE_RULE}.",
            hint="e.g. --name primary_pg",
            name=name,
        )
    return name
