"""The one error the local PostgreSQL server raises on purpose."""

from __future__ import annotations

from pathlib import Path

from storekeeper.errors import StorekeeperError

__all__ = ["ServerError"]


class ServerError(StorekeeperError):
    """A private PostgreSQL server cannot be found, initialized, started or stopped.

    ``hint`` says what to do next; ``datadir`` is the data directory involved, if any.
    Both are given when it is raised and never changed afterwards.
    """

    status = 503
    datadir: Path | None

    def __init__(self, message: str, *, hint: str | None = None, datadir: Path | None = None) -> None:
        super().__init__(message, hint=hint, datadir=datadir)
