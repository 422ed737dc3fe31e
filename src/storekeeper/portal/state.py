"""What one portal process keeps between requests: its config and its platform, opened on first use."""

from __future__ import annotations

import threading
import time
from typing import Any

from storekeeper.config import Config
from storekeeper.platform import Platform, open_platform
from storekeeper.portal.auth import TokenCache

#: How long the portal reuses a doctor report (the home page and /healthz for admins show it).
DOCTOR_SECONDS = 30.0


class PortalState:
    """The portal's config and platform (``app.state.portal``).

    The platform is opened on the first request that needs it, not when the app
    is built, so a portal whose platform database is down or unmigrated still
    starts and answers ``/healthz`` (and every API call) with what to fix.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._platform: Platform | None = None
        self._lock = threading.Lock()
        #: Small per-process caches with expiry: key -> (deadline, value).
        self._cache: dict[str, tuple[float, Any]] = {}
        #: Bearer tokens checked recently (``portal.token_cache_seconds``).
        self.tokens = TokenCache(config.portal_token_cache_seconds)

    def platform(self) -> Platform:
        """Return the platform, opening it (and checking its schema) on first use."""
        if self._platform is None:
            with self._lock:
                if self._platform is None:
                    self._platform = open_platform(self.config)
        return self._platform

    def cached(self, key: str) -> Any | None:
        found = self._cache.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def remember(self, key: str, value: Any, seconds: float) -> None:
        self._cache[key] = (time.monotonic() + seconds, value)

    def doctor(self) -> Any:
        """Return ``storekeeper doctor``'s report (:class:`storekeeper.doctor.Report`), reused for a while.

        It asks every service, so it runs at most once per :data:`DOCTOR_SECONDS` per process.
        """
        from storekeeper import doctor

        report = self.cached("doctor")
        if report is None:
            report = doctor.run(self.config, platform=self.platform())
            self.remember("doctor", report, DOCTOR_SECONDS)
        return report

    def forget(self, key: str) -> None:
        self._cache.pop(key, None)

    def close(self) -> None:
        with self._lock:
            if self._platform is not None:
                self._platform.close()
                self._platform = None
