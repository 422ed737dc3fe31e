"""Names of test copies and templates: prefixes, xdist workers, the 63-byte short form, reserved packages."""

from __future__ import annotations

import pytest

from storekeeper import InvalidNameError
from storekeeper.backends.names import check_package, database_name
from storekeeper.testing import names
from storekeeper.testing.names import copy_name, short_form, template_name, worker_id

LONG_PACKAGE = "a_rather_long_app_package_name_x"  # 32 bytes
LONG_STORE = "observations_2024_db_xyz"  # 24 bytes: <package>_<store> is 57 bytes, fine for a real store


@pytest.fixture(autouse=True)
def _no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


def test_copy_and_template_names_prefix_the_real_database_name() -> None:
    assert database_name("my_first_app", "example_db") == "my_first_app_example_db"
    assert copy_name("my_first_app", "example_db") == "test_my_first_app_example_db"
    assert template_name("my_first_app", "example_db") == "tpl_my_first_app_example_db"


def test_copy_name_carries_the_xdist_worker_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert worker_id() == "3"
    assert copy_name("my_first_app", "example_db") == "test3_my_first_app_example_db"
    assert copy_name("my_first_app", "example_db", worker="12") == "test12_my_first_app_example_db"
    assert template_name("my_first_app", "example_db") == "tpl_my_first_app_example_db"  # shared by all workers


@pytest.mark.parametrize("value", ["", "master", "gw", "gwx", "local"])
def test_no_worker_number_outside_xdist_workers(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", value)
    assert worker_id() is None
    assert copy_name("my_first_app", "example_db") == "test_my_first_app_example_db"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), ("", False), ("true", False)])
def test_testing_mode_is_on_only_for_storekeeper_testing_1(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("STOREKEEPER_TESTING", value)
    assert names.testing_mode() is expected


def test_testing_mode_is_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOREKEEPER_TESTING", raising=False)
    assert names.testing_mode() is False


def test_long_derived_names_get_a_deterministic_short_form_of_at_most_63_bytes() -> None:
    assert len(database_name(LONG_PACKAGE, LONG_STORE)) <= 63
    derived = [
        template_name(LONG_PACKAGE, LONG_STORE),
        copy_name(LONG_PACKAGE, LONG_STORE),
        copy_name(LONG_PACKAGE, LONG_STORE, worker="7"),
        copy_name(LONG_PACKAGE, LONG_STORE, worker="1234"),
    ]
    for name in derived:
        assert len(name.encode()) <= 63, name
        assert name.split("_")[0] in ("tpl", "test", "test7", "test1234")  # still recognisable as a test database
    assert derived == [
        template_name(LONG_PACKAGE, LONG_STORE),
        copy_name(LONG_PACKAGE, LONG_STORE),
        copy_name(LONG_PACKAGE, LONG_STORE, worker="7"),
        copy_name(LONG_PACKAGE, LONG_STORE, worker="1234"),
    ]
    assert len(set(derived)) == len(derived)


def test_short_forms_of_names_sharing_a_long_prefix_differ() -> None:
    a = copy_name(LONG_PACKAGE, LONG_STORE)
    b = copy_name(LONG_PACKAGE, LONG_STORE[:-1] + "w")  # differs only in its last byte, past the kept prefix
    assert a != b
    assert a[:54] == b[:54]


def test_short_form_keeps_names_that_fit() -> None:
    exactly = "x" * 63
    assert short_form(exactly) == exactly
    assert short_form("x" * 64) != "x" * 64


def test_derived_names_check_the_store_name() -> None:
    with pytest.raises(InvalidNameError):
        copy_name("my_first_app", "Bad-Name")
    with pytest.raises(InvalidNameError):
        template_name("my_first_app", "x" * 64)


@pytest.mark.parametrize("package", ["test_x", "tpl", "test1x", "test", "tpl_app", "test0_app"])
def test_package_names_that_could_collide_with_test_databases_are_refused(package: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_package(package)
    assert package in info.value.message
    assert "reserved" in info.value.message
    assert info.value.hint
    with pytest.raises(InvalidNameError):
        copy_name(package, "db")


@pytest.mark.parametrize("package", ["tests_app", "testing", "tplx", "my_test_app", "attest_1"])
def test_package_names_merely_starting_with_test_letters_are_allowed(package: str) -> None:
    assert check_package(package) == package
