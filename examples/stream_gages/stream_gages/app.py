"""The Stream Gages app class: its persistent store settings and its endpoints.

Settings (assign a service to each, then ``storekeeper syncstores stream_gages``):

``stream_gages_db``
    spatial database ``stream_gages_stream_gages_db`` holding the gages;
    its schema made by the migrations in ``stream_gages/migrations/stream_gages_db``,
    its seed gages by :func:`stream_gages.model.init_stream_gages_db`. Required.
``scenarios``
    connection setting through which scenario stores are created at run time
    (``stream_gages_scenario_<name>``). Optional: without it the scenario
    endpoints answer 409 naming the setting to assign.
"""

from __future__ import annotations

from collections.abc import Iterable

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting

#: The app's main store (database ``stream_gages_stream_gages_db``).
PRIMARY_DB = "stream_gages_db"
#: The Alembic script directory of the main store and of scenario stores.
MIGRATIONS = "stream_gages:migrations/stream_gages_db"
#: The connection setting scenario stores are created through.
SCENARIOS = "scenarios"


class App(AppBase):
    """Stream gages on a map, in a PostGIS store, with scenario stores made on demand."""

    name = "Stream Gages"
    package = "stream_gages"
    description = "Stream gages in a spatial store: GeoJSON API, offline map, scenario stores created at run time."
    #: Served by the portal at /apps/stream_gages/; imported by the portal only.
    router = "stream_gages.routes:router"

    def persistent_store_settings(
        self,
    ) -> Iterable[PersistentStoreDatabaseSetting | PersistentStoreConnectionSetting]:
        return (
            PersistentStoreDatabaseSetting(
                name=PRIMARY_DB,
                description="The stream gages: points in WGS 84 with a reading.",
                initializer="stream_gages.model.init_stream_gages_db",
                spatial=True,
                required=True,
                migrations=MIGRATIONS,
                metadata="stream_gages.model:Base.metadata",
            ),
            PersistentStoreConnectionSetting(
                name=SCENARIOS,
                description="Creates a spatial scenario store per scenario (POST /apps/stream_gages/scenarios).",
                required=False,
            ),
        )
