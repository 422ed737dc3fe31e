"""A store whose server stops answering: the app's requests get 503 with Retry-After, never a 500.

The store lives on a throwaway private PostgreSQL server (not the session's test
server), which the test stops and starts again.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import make_url

from storekeeper import apps, services, stores, users
from storekeeper.config import load_config
from storekeeper.pgserver import LocalServer
from storekeeper.portal import auth
from storekeeper.portal.app import create_app
from tests.portal.conftest import ADMIN_PASSWORD, TestClient, problem

LINKS = "/apps/links/links"
pytestmark = pytest.mark.slow


def test_an_app_whose_store_server_is_down_answers_503_with_retry_after_and_recovers(platform):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD)
    token = auth.create_token(platform, "admin", "outage")[1]
    with LocalServer.temporary(fast=True) as server:
        u = make_url(server.url())
        services.create_service(
            platform,
            name="outage",
            host=u.host,
            port=u.port,
            username=u.username,
            password=u.password,
            connect_timeout=2,
        )
        apps.assign_service(platform, "links", "primary_db", "outage")
        assert all(r.ok for r in stores.sync_stores(platform, ["links"]))
        with TestClient(create_app(load_config())) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            assert client.post(LINKS, json={"url": "https://example.com/a"}).status_code == 201
            assert client.get(LINKS).status_code == 200

            server.stop(
                mode="fast"
            )  # a clean stop: with fast=True (no synchronous commit) "immediate" may lose commits
            for response in (client.get(LINKS), client.post(LINKS, json={"url": "https://example.com/b"})):
                doc = problem(
                    response, 503, 'App "links" cannot reach its database', "storekeeper app-settings list links"
                )
                assert doc["app"] == "links"
                assert response.headers["Retry-After"] == "10"
                for detail in (str(u.port), u.username, u.password):
                    assert detail not in response.text  # the driver's message stays in the log
            # The portal's own pages do not depend on the app's store.
            assert client.get("/api/v1/auth/me").status_code == 200

            server.start()
            deadline = time.monotonic() + 30
            while (answer := client.get(LINKS)).status_code != 200:  # stale pooled connections are replaced
                assert answer.status_code == 503, answer.text
                assert time.monotonic() < deadline, "the app did not recover"
                time.sleep(0.5)
            assert [link["url"] for link in answer.json()["links"]] == ["https://example.com/a"]
