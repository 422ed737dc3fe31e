"""The links app: its store setting; its JSON API (:mod:`links.routes`) is served by the portal at ``/apps/links/``.

The class names its router as a string, so loading the app (every ``storekeeper``
command that names it) imports neither FastAPI nor the routes.
"""

from __future__ import annotations

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreDatabaseSetting

#: The app's one store: database ``links_primary_db``.
STORE = "primary_db"


# -- the app -----------------------------------------------------------------------------


class App(AppBase):
    """Links: save URLs and list them back, newest first, over a JSON API."""

    name = "Links"
    package = "links"
    description = (
        "A small JSON API of saved links (GET and POST /apps/links/links) with keyset pagination, "
        "kept in its own PostgreSQL store."
    )
    #: Imported by the portal only.
    router = "links.routes:router"

    def persistent_store_settings(self) -> tuple[PersistentStoreDatabaseSetting, ...]:
        """Declare the one store: ``primary_db`` (database ``links_primary_db``)."""
        return (
            PersistentStoreDatabaseSetting(
                name=STORE,
                description="Holds the saved links (table links).",
                initializer="links.model.init_primary_db",
                required=True,
            ),
        )
