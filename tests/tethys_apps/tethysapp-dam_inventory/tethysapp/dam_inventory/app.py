"""A Tethys-layout sample app: only tethys_sdk imports, as Tethys apps write them."""

from tethys_sdk.app_settings import CustomSetting, PersistentStoreDatabaseSetting
from tethys_sdk.base import TethysAppBase
from tethys_sdk.permissions import Permission, PermissionGroup


class DamInventory(TethysAppBase):
    """Tethys app class for the dam inventory sample."""

    name = "Dam Inventory"
    description = "Keeps a list of dams and where they are."
    package = "dam_inventory"
    index = "home"
    icon = f"{package}/images/dam.png"
    root_url = "dam-inventory"
    color = "#2c3e50"
    tags = '"Hydrology", "Inventory"'
    enable_feedback = False
    feedback_emails = []

    def custom_settings(self):
        return (
            CustomSetting(
                name="max_dams",
                type=CustomSetting.TYPE_INTEGER,
                description="How many dams the inventory may hold.",
                required=False,
                default=10,
            ),
        )

    def persistent_store_settings(self):
        return (
            PersistentStoreDatabaseSetting(
                name="primary_db",
                description="Dams and their locations.",
                initializer="dam_inventory.model.init_primary_db",
                required=True,
            ),
        )

    def permissions(self):
        add_dams = Permission(name="add_dams", description="May add dams to the inventory")
        admin = PermissionGroup(name="admin", permissions=(add_dams,))
        return (admin,)
