"""The Alembic environment storekeeper supplies to a store's script directory without one.

``env.py`` runs the migrations on the connection storekeeper passes in
(``config.attributes["connection"]``: the store's database, logged in as the
store's own role), one transaction per revision, with the version table
``alembic_version`` in the store. ``script.py.mako`` is the template of new
revision files (``storekeeper stores revision``).
"""
