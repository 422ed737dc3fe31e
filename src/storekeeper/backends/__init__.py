"""Provisioning backends, looked up by a service's ``backend`` name."""

from __future__ import annotations

from storekeeper.backends.postgresql import PostgresBackend, ServiceSpec
from storekeeper.errors import ServiceError

BACKENDS: dict[str, type[PostgresBackend]] = {PostgresBackend.name: PostgresBackend}


def get_backend(name: str, spec: ServiceSpec) -> PostgresBackend:
    """Return the backend named ``name`` for a service."""
    try:
        return BACKENDS[name](spec)
    except KeyError:
        raise ServiceError(
            f'Service "{spec.name}" uses backend "{name}", which this storekeeper does not support.',
            hint=f"supported: {', '.join(BACKENDS)}",
            service=spec.name,
        ) from None


__all__ = ["BACKENDS", "PostgresBackend", "ServiceSpec", "get_backend"]
