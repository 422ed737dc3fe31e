"""A Tethys-layout spatial sample app: address points checked against flood extents with PostGIS."""

from tethys_sdk.app_settings import (
    CustomSetting,
    PersistentStoreConnectionSetting,
    PersistentStoreDatabaseSetting,
    SpatialDatasetServiceSetting,
)
from tethys_sdk.base import TethysAppBase, url_map_maker
from tethys_sdk.permissions import Permission, PermissionGroup


class FloodPoints(TethysAppBase):
    """Tethys app class for the flood points sample."""

    name = "Flood Points"
    description = "Which addresses does a flood extent reach?"
    package = "flood_points"
    index = "home"
    icon = f"{package}/images/flood.png"
    root_url = "flood-points"
    color = "#1f618d"
    tags = "Flooding"
    enable_feedback = False
    feedback_emails = []

    def url_maps(self):
        UrlMap = url_map_maker(self.root_url)
        return (UrlMap(name="home", url="flood-points", controller="flood_points.controllers.home"),)

    def custom_settings(self):
        return (
            CustomSetting(
                name="buffer_meters",
                type=CustomSetting.TYPE_FLOAT,
                description="Distance added around each flood extent.",
                required=False,
            ),
        )

    def spatial_dataset_service_settings(self):
        return (
            SpatialDatasetServiceSetting(
                name="primary_geoserver",
                description="Serves the flood extent layers.",
                engine=SpatialDatasetServiceSetting.GEOSERVER,
                required=False,
            ),
        )

    def persistent_store_settings(self):
        return (
            PersistentStoreConnectionSetting(
                name="primary",
                description="Makes a scenario database per flood event.",
                required=False,
            ),
            PersistentStoreDatabaseSetting(
                name="flood_db",
                description="Address points.",
                initializer="flood_points.model.init_flood_db",
                required=True,
                spatial=True,
            ),
        )

    def permissions(self):
        view = Permission(name="view_floods", description="May look at flood extents")
        return (PermissionGroup(name="viewer", permissions=[view]),)
