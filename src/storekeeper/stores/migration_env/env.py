"""Alembic environment of a store: storekeeper passes the connection (as the store's role) in.

An app that ships its own ``env.py`` reads the same ``config.attributes``:
``connection`` (None with ``--sql``), ``target_metadata`` (the setting's
``metadata``, for autogenerate; may be None) and ``on_version_apply``.
"""

from typing import Any

from alembic import context

attributes: dict[str, Any] = context.config.attributes
options: dict[str, Any] = {
    "target_metadata": attributes.get("target_metadata"),
    "version_table": "alembic_version",
    # One transaction per revision: a revision that fails leaves the store at the one before.
    "transaction_per_migration": True,
    "compare_type": True,
}
if attributes.get("on_version_apply") is not None:
    options["on_version_apply"] = attributes["on_version_apply"]

if context.is_offline_mode():
    context.configure(dialect_name="postgresql", literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=attributes["connection"], **options)
    with context.begin_transaction():
        context.run_migrations()
