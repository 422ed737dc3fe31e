"""The ``links`` example app on the portal under concurrent load: 0 errors, and every 201 is one row.

The portal is served for real (``storekeeper start --workers 2`` on loopback),
``links`` has its store on the test server, and :data:`CLIENTS` threads, each
with its own keep-alive connection, send a mix of requests until
:data:`MAX_REQUESTS` have been sent or :data:`MAX_SECONDS` have passed:

* half ``POST /apps/links/links`` with a unique URL and an API token (201);
* a quarter ``GET /apps/links/links/{id}`` of a link this client saved (200, same URL);
* a quarter ``GET /apps/links/links?limit=20`` (200, a page of at most 20).

An error is any other status, a socket error, or a body that says something
else. At the end the store's ``links`` table (counted on the server) holds
exactly as many rows as POSTs answered 201, and holds each of their URLs.
It prints ``links load: N requests, N errors, N req/s, N rows``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from storekeeper import apps, stores, users
from storekeeper.platform import Platform
from storekeeper.portal import auth
from tests.core.conftest import rows
from tests.reliability.conftest import Figures
from tests.reliability.live_portal import Portal, free_port

pytestmark = pytest.mark.slow

CLIENTS = 8
MAX_REQUESTS = 2000
MAX_SECONDS = 20.0
PATH = "/apps/links/links"


class Client(threading.Thread):
    """One keep-alive connection sending the mix until the shared budget runs out."""

    def __init__(self, number: int, port: int, token: str, budget: Budget) -> None:
        super().__init__(name=f"links-client-{number}")
        self.number = number
        self.port = port
        self.token = token
        self.budget = budget
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []
        self.saved: dict[int, str] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # reconnect on the next request
            raise
        return response.status, json.loads(data) if data else None

    def one(self, i: int) -> None:
        kind = ("post", "get_one", "post", "list")[i % 4] if self.saved else "post"
        if kind == "post":
            url = f"https://load.example/{self.number}/{i}"
            status, doc = self.request("POST", PATH, {"url": url})
            if status == 201 and doc.get("url") == url:
                self.saved[doc["id"]] = url
            else:
                self.errors.append(f"POST {url}: {status} {doc}")
        elif kind == "get_one":
            link_id, url = next(reversed(self.saved.items()))
            status, doc = self.request("GET", f"{PATH}/{link_id}")
            if status != 200 or doc.get("url") != url:
                self.errors.append(f"GET {link_id}: {status} {doc}")
        else:
            status, doc = self.request("GET", f"{PATH}?limit=20")
            if status != 200 or len(doc.get("links", ())) > 20:
                self.errors.append(f"GET list: {status} {str(doc)[:200]}")
        self.statuses[f"{kind} {status}"] += 1

    def run(self) -> None:
        i = 0
        while self.budget.take():
            try:
                self.one(i)
            except Exception as err:
                self.statuses["exception"] += 1
                self.errors.append(repr(err))
            i += 1
        self.conn.close()


class Budget:
    """How many requests may still be sent, and until when."""

    def __init__(self, requests: int, seconds: float) -> None:
        self.left = requests
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return False
            self.left -= 1
            return True


@pytest.fixture
def links_ready(platform: Platform, service: str) -> str:
    """links with its store made on the test server (empty), and an API token of a viewer (who may POST)."""
    apps.assign_service(platform, "links", "primary_db", service)
    results = stores.sync_stores(platform, ["links"])
    assert all(r.ok for r in results), results
    users.upsert_user(platform, "loader", "loader-password-1", role="viewer")
    return auth.create_token(platform, "loader", "load test")[1]


def test_links_under_concurrent_load(sk_home: Path, links_ready: str, pg_admin_url: str) -> None:
    with Portal(sk_home, free_port(), workers=2, log_level="warning") as portal:
        budget = Budget(MAX_REQUESTS, MAX_SECONDS)
        clients = [Client(n, portal.port, links_ready, budget) for n in range(CLIENTS)]
        started = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        seconds = time.monotonic() - started
    statuses: Counter[str] = sum((c.statuses for c in clients), Counter())
    errors = [e for c in clients for e in c.errors]
    sent = sum(statuses.values())
    created = statuses["post 201"]
    stored = rows(pg_admin_url, "links_primary_db", "SELECT url FROM links")
    urls = {url for (url,) in stored}
    print(
        f"\nlinks load: {sent} requests ({dict(sorted(statuses.items()))}) from {CLIENTS} clients in "
        f"{seconds:.1f} s, {len(errors)} errors, {sent / seconds:.0f} req/s, {len(stored)} rows for {created} 201s"
    )
    assert sent >= min(MAX_REQUESTS, 200), "too few requests to say anything"
    saved = {url for c in clients for url in c.saved.values()}
    Figures(
        "links load",
        tried=sent,
        failed=len(errors),
        lost=len(saved - urls) + len(urls - saved) + abs(len(stored) - created),
        extra={"created": created, "rows": len(stored), "req_per_s": round(sent / seconds)},
        problems=errors[:5],
    ).check()
