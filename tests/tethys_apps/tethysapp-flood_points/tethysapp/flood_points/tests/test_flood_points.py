"""The flood points app's tests, written for Tethys (TethysTestCase and its test stores)."""

from tethys_sdk.testing import TethysTestCase
from tethysapp.flood_points.app import FloodPoints
from tethysapp.flood_points.model import add_address, addresses_in_extent

#: A box around River Rd, away from Hill St.
RIVER_EXTENT = "POLYGON((-111.8 40.2, -111.6 40.2, -111.6 40.4, -111.8 40.4, -111.8 40.2))"


class FloodPointsTests(TethysTestCase):
    def set_up(self):
        self.create_test_persistent_stores_for_app(FloodPoints)

    def tear_down(self):
        self.destroy_test_persistent_stores_for_app(FloodPoints)

    def test_flood_points_finds_addresses_inside_the_extent(self):
        self.assertEqual(addresses_in_extent(RIVER_EXTENT), ["1 River Rd", "2 River Rd"])

    def test_flood_points_sees_a_new_address_in_the_extent(self):
        add_address("3 River Rd", -111.65, 40.35)
        add_address("10 Hill St", -111.49, 40.51)
        self.assertEqual(addresses_in_extent(RIVER_EXTENT), ["1 River Rd", "2 River Rd", "3 River Rd"])
