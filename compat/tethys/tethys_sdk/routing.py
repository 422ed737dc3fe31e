"""Tethys's routing names: declared, not served.

storekeeper serves an app's endpoints from a FastAPI router (``router`` on the
app class); it does not run Django controllers. These names exist so that a
Tethys app's modules import: the decorators return the function unchanged,
and the ``UrlMap`` objects ``url_map_maker`` makes only record what they were
given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["consumer", "controller", "handler", "url_map_maker"]


class _UrlMap:
    """A URL declared by a Tethys app (not served by storekeeper)."""

    root_url: str = ""

    def __init__(self, name: str, url: str, controller: str | Callable[..., Any], **options: Any) -> None:
        self.name = name
        self.url = url
        self.controller = controller
        self.options = options

    @property
    def path(self) -> str:
        """The URL under the app's root URL, as Tethys would join them."""
        return "/".join(part.strip("/") for part in (self.root_url, self.url) if part.strip("/"))

    def __repr__(self) -> str:
        return f"UrlMap(name={self.name!r}, url={self.url!r})"


def url_map_maker(root_url: str) -> type[_UrlMap]:
    """Return a ``UrlMap`` class for an app whose URLs live under ``root_url`` (declared, not served).

    Example::

        UrlMap = url_map_maker(self.root_url)
        UrlMap(name="home", url="dam-inventory", controller="dam_inventory.controllers.home")
    """
    return type("UrlMap", (_UrlMap,), {"root_url": str(root_url or "")})


def _declared_only(name: str) -> Callable[..., Any]:
    def decorator(function: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        if function is not None:
            return function  # @name
        return lambda f: f  # @name(...)

    decorator.__name__ = decorator.__qualname__ = name
    decorator.__doc__ = (
        f"Tethys's ``@{name}``, used as ``@{name}`` or ``@{name}(...)``: returns the function unchanged "
        "(storekeeper does not serve Tethys controllers)."
    )
    return decorator


controller = _declared_only("controller")
handler = _declared_only("handler")
consumer = _declared_only("consumer")
