"""One engine per store per process: a warm lookup is a dict access; changes are noticed in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, text

from storekeeper import StoreError, engines, services, stores
from storekeeper.platform import Platform
from tests.core.conftest import APP, set_record, setting_record

REVALIDATE = 0.2


@pytest.fixture
def synced(platform: Platform, my_first_app: type) -> type:
    stores.sync_stores(platform, [APP], database="example_db")
    return my_first_app


@pytest.fixture
def platform_queries(platform: Platform) -> Iterator[list[str]]:
    """Every statement sent to the platform database while the test runs."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(platform.engine, "before_cursor_execute", count)
    yield seen
    event.remove(platform.engine, "before_cursor_execute", count)


@pytest.fixture
def engines_made(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every engine storekeeper creates for a store while the test runs."""
    made: list[object] = []
    real = engines.make_engine

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        engine = real(*args, **kwargs)
        made.append(engine)
        return engine

    monkeypatch.setattr(engines, "make_engine", counting)
    return made


def test_warm_lookup_queries_no_platform_database_and_creates_no_engine(
    synced: type, platform_queries: list[str], engines_made: list[object]
) -> None:
    engine = synced.get_persistent_store_database("example_db")
    synced.get_persistent_store_database("example_db", as_url=True)
    synced.get_persistent_store_database("example_db", as_sessionmaker=True)
    assert len(engines_made) == 1  # the counter works: the cold lookup made the engine
    platform_queries.clear()
    engines_made.clear()
    for _ in range(1000):
        assert synced.get_persistent_store_database("example_db") is engine
        synced.get_persistent_store_database("example_db", as_url=True)
        synced.get_persistent_store_database("example_db", as_sessionmaker=True)
    assert platform_queries == []
    assert engines_made == []


def test_warm_connection_lookup_queries_no_platform_database(synced: type, platform_queries: list[str]) -> None:
    engine = synced.get_persistent_store_connection("primary")
    platform_queries.clear()
    assert all(synced.get_persistent_store_connection("primary") is engine for _ in range(1000))
    assert platform_queries == []


def test_cold_lookup_does_query_the_platform_database(synced: type, platform_queries: list[str]) -> None:
    synced.get_persistent_store_database("example_db")
    assert platform_queries  # the counter works: the first lookup reads the records


def test_engine_pool_uses_the_services_pool_size_and_no_overflow(synced: type) -> None:
    engine = synced.get_persistent_store_database("example_db")
    assert engine.pool.size() == 3
    assert engine.pool._max_overflow == 0  # type: ignore[attr-defined]


def test_drop_in_process_replaces_the_engine(platform: Platform, synced: type) -> None:
    old = synced.get_persistent_store_database("example_db")
    synced.drop_persistent_store("example_db")
    stores.sync_stores(platform, [APP], database="example_db")
    new = synced.get_persistent_store_database("example_db")
    assert new is not old
    with new.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_refresh_in_process_replaces_the_engine(platform: Platform, synced: type) -> None:
    old = synced.get_persistent_store_database("example_db")
    with old.connect() as conn:
        conn.execute(text("SELECT 1"))  # leave a pooled connection to the old database
    stores.sync_stores(platform, [APP], database="example_db", refresh=True)
    new = synced.get_persistent_store_database("example_db")
    assert new is not old
    with new.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_dynamic_store_recreated_under_the_same_name_gets_a_new_engine(my_first_app: type) -> None:
    my_first_app.create_persistent_store("scenario_1", "primary")
    old = my_first_app.get_persistent_store_database("scenario_1")
    my_first_app.drop_persistent_store("scenario_1")
    my_first_app.create_persistent_store("scenario_1", "primary")
    new = my_first_app.get_persistent_store_database("scenario_1")
    assert new is not old
    with new.connect() as conn:
        conn.execute(text("SELECT 1"))


# -- other processes ---------------------------------------------------------------------------


@pytest.fixture
def fast_revalidate(sk_home: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """Make cached engines trusted for only REVALIDATE seconds (set before the platform loads)."""
    monkeypatch.setenv("STOREKEEPER_ENGINES_REVALIDATE_SECONDS", str(REVALIDATE))
    return REVALIDATE


def test_change_by_another_process_is_picked_up_once_revalidation_is_due(
    fast_revalidate: float, platform: Platform, synced: type
) -> None:
    assert platform.config.engines_revalidate_seconds == REVALIDATE
    old = synced.get_persistent_store_database("example_db")
    generation = setting_record(platform, APP, "example_db")["generation"]  # type: ignore[index]
    set_record(platform, APP, "example_db", generation=generation + 1)  # what another process's refresh does
    assert synced.get_persistent_store_database("example_db") is old  # still trusted within the bound
    time.sleep(REVALIDATE + 0.05)
    new = synced.get_persistent_store_database("example_db")
    assert new is not old
    assert synced.get_persistent_store_database("example_db") is new


def test_revalidation_keeps_the_engine_when_nothing_changed(
    fast_revalidate: float, platform: Platform, synced: type, platform_queries: list[str]
) -> None:
    old = synced.get_persistent_store_database("example_db")
    time.sleep(REVALIDATE + 0.05)
    platform_queries.clear()
    assert synced.get_persistent_store_database("example_db") is old
    assert platform_queries  # it did ask


def test_service_change_by_another_process_is_picked_up(
    fast_revalidate: float, platform: Platform, synced: type
) -> None:
    old = synced.get_persistent_store_database("example_db")
    with platform.engine.begin() as conn:
        conn.execute(text("UPDATE services SET pool_size = 2, version = version + 1 WHERE name = 'local'"))
    time.sleep(REVALIDATE + 0.05)
    new = synced.get_persistent_store_database("example_db")
    assert new is not old
    assert new.pool.size() == 2


def test_drop_by_another_process_is_reported_once_revalidation_is_due(
    fast_revalidate: float, platform: Platform, synced: type
) -> None:
    synced.get_persistent_store_database("example_db")
    set_record(platform, APP, "example_db", state="absent")
    time.sleep(REVALIDATE + 0.05)
    with pytest.raises(StoreError, match="not been created"):
        synced.get_persistent_store_database("example_db")


@pytest.fixture
def short_idle(sk_home: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Close pooled store connections idle for more than one second (set before the platform loads)."""
    monkeypatch.setenv("STOREKEEPER_ENGINES_IDLE_TIMEOUT_SECONDS", "1")
    return 1


def test_pooled_connection_idle_past_the_bound_is_replaced_and_closed(
    short_idle: int, platform: Platform, synced: type, admin_conn: psycopg.Connection
) -> None:
    engine = synced.get_persistent_store_database("example_db")
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The server ends sessions a little after our bound, should a process stop checking.
        assert conn.execute(text("SHOW idle_session_timeout")).scalar_one() == "31s"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid  # fresh enough: reused
    time.sleep(short_idle + 0.2)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    deadline = time.monotonic() + 2
    while admin_conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        assert time.monotonic() < deadline, "the idle connection was replaced but never closed"
        time.sleep(0.05)


# -- pool bound ---------------------------------------------------------------------------------


def test_connections_to_a_store_never_exceed_the_pool_size(synced: type, platform: Platform) -> None:
    maker = synced.get_persistent_store_database("example_db", as_sessionmaker=True)
    pool_size = services.get_service(platform, "local").pool_size
    seen: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                with maker() as session:
                    count = session.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND backend_type = 'client backend'"
                        )
                    ).scalar_one()
                    session.execute(text("SELECT pg_sleep(0.005)"))
                    seen.append(count)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(seen) == 160
    assert max(seen) <= pool_size
    assert max(seen) >= 2  # the threads really did run side by side
