"""Tethys's permission names: declared, not enforced.

storekeeper has no Tethys users, groups or permissions, and does not serve
Tethys controllers, so nothing here restricts anything:

- ``Permission`` and ``PermissionGroup`` record what the app declares
  (``TethysAppBase.permissions()``);
- ``permission_required`` and ``login_required`` return the decorated
  function unchanged;
- ``has_permission`` raises ``NotImplementedError``: a check that cannot be
  made is never answered "yes".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Permission", "PermissionGroup", "has_permission", "login_required", "permission_required"]


class Permission:
    """A permission a Tethys app declares (recorded, not enforced).

    Example::

        Permission(name="add_dams", description="Add dams to the inventory")
    """

    def __init__(self, name: str, description: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Permission needs a name: a non-empty string, not {name!r}")
        self.name = name
        self.description = description

    def __repr__(self) -> str:
        return f"Permission(name={self.name!r})"


class PermissionGroup:
    """A group of permissions a Tethys app declares (recorded, not enforced).

    Example::

        PermissionGroup(name="admin", permissions=[add_dams])
    """

    def __init__(self, name: str, permissions: Iterable[Permission] = ()) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"PermissionGroup needs a name: a non-empty string, not {name!r}")
        self.name = name
        self.permissions = list(permissions or ())

    def __repr__(self) -> str:
        return f"PermissionGroup(name={self.name!r}, permissions={[p.name for p in self.permissions]!r})"


def permission_required(*permissions: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Tethys's ``@permission_required(...)``: returns the function unchanged (not enforced)."""
    return lambda function: function


def login_required(function: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Tethys's ``@login_required`` or ``@login_required(...)``: returns the function unchanged (not enforced)."""
    if function is not None:
        return function
    return lambda f: f


def has_permission(request: Any, perm: str, user: Any = None) -> bool:
    """Tethys's permission check; storekeeper cannot make it, so it raises ``NotImplementedError``."""
    raise NotImplementedError(
        f"has_permission(request, {perm!r}): storekeeper does not manage Tethys users or permissions, "
        "so it cannot answer; a check that cannot be made is never answered yes. "
        "Check access in your app's own FastAPI router instead (see the Tethys compatibility page of the docs)."
    )
