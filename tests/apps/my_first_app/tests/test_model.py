"""my_first_app's own tests: run them with `storekeeper test my_first_app`.

Each test gets a fresh copy of example_db as it looks right after its
first-time initialization; the real store is never touched.
"""

from sqlalchemy import func, select

from my_first_app.app import App
from my_first_app.model import StreamGage
from storekeeper.testing import persistent_store

example_db = persistent_store("my_first_app", "example_db")
fast_db = persistent_store("my_first_app", "example_db", mode="rollback")


def count_gages(session):
    return session.scalar(select(func.count()).select_from(StreamGage))


def test_copy_holds_the_initial_gages(example_db):
    with example_db.sessionmaker() as session:
        assert count_gages(session) == 2


def test_app_api_resolves_to_the_copy(example_db):
    engine = App.get_persistent_store_database("example_db")
    assert engine.url.database == example_db.database
    assert engine.url.database != "my_first_app_example_db"


def test_a_test_may_write(example_db):
    with example_db.sessionmaker() as session:
        session.add(StreamGage(latitude=40.0, longitude=-111.0, value=3))
        session.commit()
        assert count_gages(session) == 3


def test_the_next_test_starts_fresh(example_db):
    with example_db.sessionmaker() as session:
        assert count_gages(session) == 2


def test_rollback_mode_lets_code_commit(fast_db):
    Session = App.get_persistent_store_database("example_db", as_sessionmaker=True)
    with Session() as session:
        session.add(StreamGage(latitude=41.0, longitude=-112.0, value=4))
        session.commit()
        assert count_gages(session) == 3


def test_rollback_mode_rolls_back_between_tests(fast_db):
    with fast_db.sessionmaker() as session:
        assert count_gages(session) == 2
