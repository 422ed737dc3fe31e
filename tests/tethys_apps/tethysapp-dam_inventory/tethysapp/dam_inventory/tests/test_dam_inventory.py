"""The dam inventory's tests, written for Tethys (TethysTestCase and its test stores)."""

from tethys_sdk.testing import TethysTestCase
from tethysapp.dam_inventory.app import DamInventory
from tethysapp.dam_inventory.model import add_new_dam, get_all_dams


class DamInventoryTests(TethysTestCase):
    def set_up(self):
        self.create_test_persistent_stores_for_app(DamInventory)

    def tear_down(self):
        self.destroy_test_persistent_stores_for_app(DamInventory)

    def test_dam_inventory_starts_with_the_initializers_dams(self):
        self.assertEqual([d.name for d in get_all_dams()], ["Deer Creek", "Jordanelle"])

    def test_dam_inventory_adds_a_dam(self):
        point = {"type": "Point", "coordinates": [-111.68, 40.33]}
        add_new_dam(location=point, name="Utah Lake", owner="State", river="Jordan River", date_built="1872")
        dams = get_all_dams()
        self.assertEqual(len(dams), 3)
        self.assertIn("Utah Lake", [d.name for d in dams])

    def test_dam_inventory_uses_the_test_copy(self):
        self.assertTrue(self.is_testing_environment())
        url = DamInventory.get_persistent_store_database("primary_db", as_url=True)
        self.assertTrue(url.database.startswith("test"), url.database)
