"""A stand-in for Tethys Platform's ``tethys_sdk``, so Tethys apps' persistent-store code runs on storekeeper.

Provided by the ``storekeeper-tethys`` distribution (``pip install -e compat/tethys``
in a storekeeper checkout). Its modules map the names a Tethys app's ``app.py``,
``model.py`` and tests import onto storekeeper:

=============================  =============================================================
module                         provides
=============================  =============================================================
``tethys_sdk.app_settings``    persistent store settings (storekeeper's own); the other
                               setting kinds, accepted and listed as not managed here
``tethys_sdk.base``            ``TethysAppBase``: storekeeper's ``AppBase`` plus Tethys's
                               class attributes and optional methods; ``url_map_maker``
``tethys_sdk.routing``         ``controller``, ``handler``, ``url_map_maker``: declared, not served
``tethys_sdk.permissions``     ``Permission``, ``PermissionGroup`` and the decorators:
                               declared, not enforced
``tethys_sdk.testing``         ``TethysTestCase`` on storekeeper's test copies
=============================  =============================================================

It never stands in for a real Tethys installation: when Tethys Platform
(``tethys_apps``) can be imported, importing this package fails with an
``ImportError`` that says which one to uninstall.
"""

from __future__ import annotations

import importlib.util

__version__ = "0.1.0"


def _refuse_beside_real_tethys() -> None:
    spec = importlib.util.find_spec("tethys_apps")
    if spec is None:
        return
    where = spec.origin or ", ".join(spec.submodule_search_locations or []) or "an unknown location"
    raise ImportError(
        "This tethys_sdk is storekeeper-tethys's stand-in for Tethys Platform, but Tethys Platform itself "
        f"(tethys_apps, at {where}) is installed in this environment, and the stand-in must not shadow it. "
        "Fix: to run the app on Tethys, uninstall the stand-in (pip uninstall storekeeper-tethys); "
        "to run it on storekeeper, use an environment without Tethys Platform (pip uninstall tethys-platform).",
        name="tethys_sdk",
    )


_refuse_beside_real_tethys()
