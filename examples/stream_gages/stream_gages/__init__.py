"""Stream Gages: an example storekeeper app.

It keeps stream gages (a location and a reading) in a spatial persistent
store, serves them as GeoJSON, draws them on a map that needs no network, and
lets signed-in admins make throw-away "scenario" stores at run time.

* :mod:`stream_gages.app` -- the app class and its persistent store settings
* :mod:`stream_gages.model` -- the ``stream_gages`` table and the initializers
* :mod:`stream_gages.routes` -- the endpoints under ``/apps/stream_gages/``
* :mod:`stream_gages.mapview` -- the server-side map (projection, grid, markers)
"""

__version__ = "0.1.0"
