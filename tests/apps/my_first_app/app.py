from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting


class App(AppBase):
    """My First App: the settings from the Persistent Store API guide."""

    name = "My First App"
    package = "my_first_app"
    description = "Example app declaring every kind of persistent store setting."

    def persistent_store_settings(self):
        return (
            PersistentStoreDatabaseSetting(
                name="example_db",
                description="Primary database for my_first_app.",
                initializer="my_first_app.model.init_example_db",
                required=True,
            ),
            PersistentStoreConnectionSetting(
                name="primary", description="Connection with superuser role needed.", required=True
            ),
            PersistentStoreConnectionSetting(name="creator", description="Create database role only.", required=False),
            PersistentStoreDatabaseSetting(
                name="spatial_db",
                description="for storing important spatial stuff",
                required=True,
                initializer="my_first_app.model.init_spatial_db",
                spatial=True,
            ),
            PersistentStoreDatabaseSetting(
                name="temp_db",
                description="for storing temporary stuff",
                required=False,
                initializer="my_first_app.model.init_temp_db",
                spatial=False,
            ),
        )
