"""The error the local PostgreSQL server raises on purpose: :class:`storekeeper.errors.ServerError`."""

from __future__ import annotations

from storekeeper.errors import ServerError

__all__ = ["ServerError"]
