"""What an app declares about itself: its identity and its persistent store settings.

:class:`AppDeclaration` is the part of an app the core reads (discovery,
provisioning, resolution). Apps subclass :class:`storekeeper.AppBase`, which
adds the classmethods apps call; keeping the declaration apart lets the core
work with apps without importing the app-facing API, which itself sits on top
of the core.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting, UnmanagedSetting


class AppDeclaration:
    """An app's identity and settings, as the core sees them (subclass :class:`storekeeper.AppBase`)."""

    #: Display name.
    name: ClassVar[str] = ""
    #: The app's identity: CLI arguments, records, URLs and database names.
    package: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: The app's endpoints, served by the portal at ``/apps/<package>/``: preferably a string
    #: ``"package.module:attribute"``, imported by the portal only (so commands never import the
    #: app's routes, FastAPI or pydantic), or the object itself: a FastAPI ``APIRouter`` or an ASGI app.
    router: ClassVar[object] = None

    def persistent_store_settings(
        self,
    ) -> Iterable[PersistentStoreDatabaseSetting | PersistentStoreConnectionSetting]:
        """Override to return the app's persistent store settings."""
        return ()

    def unmanaged_settings(self) -> Iterable[UnmanagedSetting]:
        """Override to list settings the app declares that storekeeper does not manage.

        They are shown (``storekeeper apps show``, the REST app resource) with
        the note "declared, not managed by storekeeper", and never acted on.
        """
        return ()


#: The type of an app class, as the core takes it.
AppClass = type[AppDeclaration]
