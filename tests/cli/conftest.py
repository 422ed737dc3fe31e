"""Fixtures of the CLI tests: an in-process runner (Typer's CliRunner) and the test server's credentials.

Most tests call :func:`invoke`, which runs the ``storekeeper`` command in this
process with ``STOREKEEPER_HOME`` set; the tests that must see a real process
(exit codes, tracebacks, stdin, TTY checks) use ``run_cli`` from the root conftest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from storekeeper.cli import render
from storekeeper.cli.main import cli
from tests.conftest import _forget_process_state

Invoke = Callable[..., Result]


@dataclass(frozen=True)
class PgServer:
    """The test server's superuser credentials, for building --connection and --url values."""

    user: str
    password: str
    host: str
    port: int

    @property
    def connection(self) -> str:
        return f"{self.user}:{self.password}@{self.host}:{self.port}"

    @property
    def connection_without_password(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/postgres"


@pytest.fixture(scope="session")
def pg(pg_admin_url: str) -> PgServer:
    """The test server's superuser credentials."""
    u = make_url(pg_admin_url)
    assert u.password, "the test server must use password authentication"
    return PgServer(user=u.username or "postgres", password=u.password, host=u.host or "127.0.0.1", port=u.port or 5432)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give Rich a wide console so table cells are not folded across lines in CliRunner output."""
    monkeypatch.setattr(render.out, "width", 250)
    monkeypatch.setattr(render.err, "width", 250)


def _invoke(home: Path, args: list[str] | str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    if isinstance(args, str):
        args = args.split()
    result = CliRunner().invoke(cli, args, input=input, env={"STOREKEEPER_HOME": str(home), **(env or {})})
    # Anything but a clean exit is a bug in the command: show it with its traceback.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def invoke(sk_home: Path) -> Invoke:
    """Run ``storekeeper ARGS`` in this process, in the test's (migrated) home."""

    def run(args: list[str] | str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return _invoke(sk_home, args, input=input, env=env)

    return run


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home directory nobody has used yet: no config file, no platform database."""
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("STOREKEEPER_HOME", str(home))
    for var in [v for v in os.environ if v.startswith("STOREKEEPER_")]:
        if var not in ("STOREKEEPER_HOME", "STOREKEEPER_TEST_DATABASE_URL", "STOREKEEPER_REQUIRE_POSTGIS"):
            monkeypatch.delenv(var)
    _forget_process_state()
    yield home
    _forget_process_state()


@pytest.fixture
def invoke_fresh(fresh_home: Path) -> Invoke:
    """Run ``storekeeper ARGS`` in this process, in a home that was never configured."""

    def run(args: list[str] | str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return _invoke(fresh_home, args, input=input, env=env)

    return run
