"""The REST API fuzzed from its own OpenAPI schema with schemathesis: 0 server errors, 0 schema violations.

Every operation under ``/api/v1`` and ``/healthz`` gets, as an admin and as a
viewer (API tokens), a bounded number of generated requests: valid ones
(positive) and invalid ones (negative), first with every parameter generated,
then with the path pinned to real throwaway objects (a service with its own
login role, my_first_app's settings and a dynamic store, a user, a token, a
job) so that destructive operations (delete, rotate, sync with refresh) reach
real rows and real databases. What the fuzzer breaks is put back before each
operation's next pass, and a token it revokes is replaced, so later cases are
not all 401s (the replacements are counted and printed).

Each response is checked for: no 5xx (one exception: the documented 502 of
testing or rotating a service the fuzzer itself registered with a host that
does not answer, which is counted and printed; its status, type and body are
still checked), a status code the schema documents, a
documented content type, a body matching its schema, documented headers; and a
viewer's call to an operation only admins may make (by the rules of
``tests/portal/test_auth.py``) must be refused with a 4xx.
The run is deterministic (hypothesis ``derandomize``) and prints one line:
``fuzz: N operations, N cases, N failing cases, N distinct failures, N re-signins; a viewer refused N of N
admin-only calls``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import make_url

from storekeeper import apps, stores, users
from storekeeper.config import load_config
from storekeeper.errors import StorekeeperError
from storekeeper.platform import Platform
from storekeeper.portal import auth, jobs
from storekeeper.portal.app import create_app
from tests.core.conftest import connect_to, drop_service_user, make_service_user
from tests.portal.test_auth import ADMIN_READS, PUBLIC, VIEWER_MAY
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.slow

#: Generated requests per operation, per generation mode (valid, invalid), per pass (generated, pinned paths),
#: per role; STOREKEEPER_FUZZ_EXAMPLES runs a deeper search.
EXAMPLES = int(os.environ.get("STOREKEEPER_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: The part of the schema fuzzed here: the REST API and the health check (apps' own endpoints are theirs).
FUZZED = ("/api/v1/", "/healthz")

SERVICE = "fuzz_svc"
OWNER = "sk_fuzz_owner"
OWNER_PASSWORD = "fuzz-owner-password-1"
APP = "my_first_app"
#: my_first_app's settings plugged into the throwaway service (spatial_db left out: PostGIS is not the point here).
SETTINGS = ("example_db", "temp_db", "primary", "creator")
DYNAMIC_STORE = "fuzz_scratch"
TARGET_USER = "fuzz_target"
PASSWORDS = {"admin": "admin-password-1", "viewer": "viewer-password-1", TARGET_USER: "target-password-1"}


@dataclass
class Tally:
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    failing_cases: int = 0
    #: distinct failure (operation, role, check, message head) -> the first report of it
    failures: dict[tuple[str, ...], str] = field(default_factory=dict)
    resignins: int = 0
    #: "METHOD /path" of the operations only an admin may call
    admin_only: set[str] = field(default_factory=set)
    #: viewer cases on admin-only operations, and how many of them were refused (4xx)
    viewer_tries: int = 0
    viewer_refused: int = 0
    #: documented 502s of services the fuzzer registered with hosts that do not answer
    unreachable: int = 0

    def fail(self, key: tuple[str, ...], report: str) -> None:
        self.failures.setdefault(key, report)


class World:
    """The throwaway objects pinned into paths, and putting them back after the fuzzer broke them."""

    def __init__(self, platform: Platform, pg_admin_url: str) -> None:
        self.platform = platform
        self.pg_admin_url = pg_admin_url
        self.tokens: dict[str, str] = {}
        self.token_id = 0
        self.job_id = ""
        #: Whether a pass may have changed the pinned objects since restore().
        self.dirty = True

    def sign_in(self, role: str) -> str:
        users.upsert_user(self.platform, role, PASSWORDS[role], role=role)
        self.tokens[role] = auth.create_token(self.platform, role, "fuzz")[1]
        return self.tokens[role]

    def still_signed_in(self, role: str) -> bool:
        return auth.authenticate_token(self.platform, self.tokens[role]) is not None

    def restore(self) -> None:
        """Put every pinned object back as the fixture made it (idempotent, cheap when nothing changed)."""
        from storekeeper import services

        u = make_url(self.pg_admin_url)
        with connect_to(self.pg_admin_url, "postgres") as conn:
            conn.execute(f"ALTER ROLE {OWNER} PASSWORD '{OWNER_PASSWORD}'")
        fields: dict[str, Any] = {
            "host": u.host or "127.0.0.1",
            "port": u.port or 5432,
            "username": OWNER,
            "password": OWNER_PASSWORD,
            "maintenance_db": "postgres",
            "connect_timeout": 10,
            "pool_size": 3,
        }
        try:
            services.update_service(self.platform, SERVICE, sslmode="", **fields)
        except StorekeeperError:
            services.create_service(self.platform, name=SERVICE, **fields)
        for setting in SETTINGS:
            with contextlib.suppress(StorekeeperError):  # a setting whose store exists keeps its service
                apps.assign_service(self.platform, APP, setting, SERVICE)
        target = next((x for x in users.list_users(self.platform) if x.username == TARGET_USER), None)
        if target is None or target.role != "viewer" or not target.active:
            users.upsert_user(self.platform, TARGET_USER, PASSWORDS[TARGET_USER], role="viewer")
        self.token_id = auth.create_token(self.platform, TARGET_USER, "fuzz target")[0].id
        with contextlib.suppress(StorekeeperError):
            stores.create_store(self.platform, APP, DYNAMIC_STORE, "primary")
        self.dirty = False

    def pinned(self, path: str) -> dict[str, Any]:
        """Path parameters naming real objects, for the operations at ``path``."""
        values: dict[str, Any] = {
            "app": APP,
            "setting": SETTINGS[0],
            "username": TARGET_USER,
            "token_id": self.token_id,
            "job_id": self.job_id,
            "name": DYNAMIC_STORE if "/stores/" in path else SERVICE,
        }
        return {k: v for k, v in values.items() if "{" + k + "}" in path}


@pytest.fixture
def world(platform: Platform, pg_admin_url: str) -> Iterator[World]:
    make_service_user(platform, pg_admin_url, SERVICE, OWNER, OWNER_PASSWORD, "LOGIN CREATEDB CREATEROLE")
    world = World(platform, pg_admin_url)
    world.restore()
    world.job_id = jobs.submit_sync(platform, APP).id
    yield world
    jobs.wait_for_jobs(60)
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, OWNER)


def _describe(case: Any, response: Any) -> str:
    return f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"


def _where(failure: BaseException) -> str:
    """What tells one failure from another: the schema location or status it is about, not the values."""
    lines = str(failure).splitlines()
    found = [line for line in lines if line.startswith(("Schema at", "Received:", "Documented:", "Expected"))]
    return " ".join(found)[:160] or (lines[0][:160] if lines else "")


def _unreachable_on_purpose(case: Any, response: Any) -> bool:
    """Whether this is the documented 502 of a service the fuzzer itself registered with a host that does not answer.

    A 502 says the database server, not the portal, failed; it is what an admin
    must see when they test or rotate a service pointed at nowhere. The pinned
    service is always reachable, so a 502 naming it still fails the run, as
    does any other 5xx.
    """
    if response.status_code != 502 or not case.path.startswith("/api/v1/services/{name}/"):
        return False
    try:
        doc = response.json()
    except ValueError:
        return False
    return (
        doc.get("type") == "urn:storekeeper:problem:service-error"
        and doc.get("service") not in (None, SERVICE)
        and str(doc.get("detail", "")).startswith("Cannot connect to ")
    )


def _check(case: Any, world: World, tally: Tally, role: str) -> None:
    """Send one generated request and check its response; count what fails."""
    tally.cases += 1
    mode = case.meta.generation.mode.name.lower() if case.meta else "?"
    try:
        response = case.call(headers={"Authorization": f"Bearer {world.tokens[role]}"})
    except Exception as err:  # the app raised instead of answering: a server error
        tally.failing_cases += 1
        tally.fail(
            (case.operation.label, "raised", type(err).__name__),
            f"{role}/{mode}: {case.method} {case.formatted_path}: {err!r}",
        )
        return
    checks = CHECKS
    if _unreachable_on_purpose(case, response):
        tally.unreachable += 1
        checks = [c for c in CHECKS if c is not not_a_server_error]  # still a documented status, type and body
    try:
        case.validate_response(response, checks=checks)
    except BaseExceptionGroup as group:  # FailureGroup: every check that failed
        tally.failing_cases += 1
        for failure in group.exceptions:
            title = str(getattr(failure, "title", type(failure).__name__))
            tally.fail(
                (case.operation.label, title, _where(failure)), f"{role}/{mode}: {_describe(case, response)}\n{failure}"
            )
    if role == "viewer" and case.operation.label in tally.admin_only:
        tally.viewer_tries += 1
        if 400 <= response.status_code < 500:
            tally.viewer_refused += 1
        else:
            tally.failing_cases += 1
            tally.fail((case.operation.label, "a viewer was not refused"), f"{mode}: {_describe(case, response)}")
    if case.method != "GET" and not world.still_signed_in(role):  # our token revoked, or we were disabled
        world.sign_in(role)
        tally.resignins += 1


def _fuzz(schema: Any, world: World, tally: Tally, role: str) -> None:
    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith(FUZZED):
            continue
        tally.operations.add(op.label)
        pinned = world.pinned(op.path)
        for path_parameters in ({}, pinned) if pinned else ({},):
            if path_parameters and world.dirty:
                world.restore()
            # Only an admin changes the pinned objects, and only through a path naming one of them.
            world.dirty = world.dirty or bool(path_parameters and role == "admin" and op.method.upper() != "GET")
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = op.as_strategy(generation_mode=mode, path_parameters=dict(path_parameters))

                @settings(
                    max_examples=EXAMPLES,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def run(case: Any) -> None:
                    _check(case, world, tally, role)

                with contextlib.suppress(Unsatisfiable):  # e.g. no invalid request exists for /healthz
                    run()
                print(
                    flush=True,
                )


def _admin_only(schema: dict[str, Any]) -> set[str]:
    """The operations only an admin may call, by the rules tests/portal/test_auth.py states and checks."""
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    changes = {(m, p) for m, p in operations if p.startswith("/api/") and m != "GET"} - PUBLIC - VIEWER_MAY
    return {f"{m} {p}" for m, p in changes | ADMIN_READS}


def test_fuzz_rest_api(world: World) -> None:
    started = time.monotonic()
    app = create_app(load_config())
    world.sign_in("admin")
    world.sign_in("viewer")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tally = Tally(admin_only=_admin_only(app.openapi()))
    try:
        for role in ("admin", "viewer"):
            _fuzz(schema, world, tally, role)
    finally:
        asgi.shutdown_lifespans()
    for key, report in tally.failures.items():
        print(f"\n--- {' | '.join(key)}\n{report[:1500]}")
    print(
        f"\nfuzz: {len(tally.operations)} operations, {tally.cases} cases, {tally.failing_cases} failing cases, "
        f"{len(tally.failures)} distinct failures, {tally.resignins} re-signins; a viewer refused "
        f"{tally.viewer_refused} of {tally.viewer_tries} admin-only calls; {tally.unreachable} documented 502s "
        f"(services the fuzzer pointed at nowhere); {time.monotonic() - started:.0f} s"
    )
    assert len(tally.operations) >= 28
    assert tally.cases >= 28 * 2 * EXAMPLES
    assert len(tally.admin_only) >= 14 and tally.viewer_tries >= 14 * EXAMPLES
    Figures(
        "fuzz REST API",
        tried=tally.cases,
        failed=tally.failing_cases,
        extra={
            "operations": len(tally.operations),
            "distinct_failures": len(tally.failures),
            "viewer_refused": tally.viewer_refused,
            "unreachable_502": tally.unreachable,
        },
        problems=[" | ".join(key) for key in tally.failures],
    ).check()
