"""Hostile usernames, through every door a user is made by: REST, the web admin and the CLI.

Each name breaks the rule ``[a-z][a-z0-9_.-]{0,63}`` in its own way (control
characters, look-alike letters, length, SQL, paths, ...). Every one must be
refused with a message naming the rule, and no user may be created; names that
follow the rule (SQL reserved words included) are accepted. Each door prints
its figure: tried / refused / created.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from storekeeper import users
from storekeeper.config import load_config
from storekeeper.portal import auth
from storekeeper.portal.app import create_app
from tests.portal.conftest import ADMIN_PASSWORD, PROBLEM_JSON, TestClient
from tests.portal.ui.conftest import Web

RULE = users.USERNAME_RULE
PASSWORD = "long-enough-password-1"

#: kind -> a username that must be refused.
HOSTILE: dict[str, str] = {
    "NUL": "ad\x00min",
    "CR/LF header injection": "admin\r\nSet-Cookie: sk=1",
    "LF": "ad\nmin",
    "DEL": "ad\x7fmin",
    "tab": "ad\tmin",
    "space": "ad min",
    "Cyrillic a look-alike": "\u0430dmin",
    "fullwidth letters": "\uff41dmin",
    "zero-width space": "ad\u200bmin",
    "line separator (not Latin-1)": "ad\u2028min",
    "65 characters": "a" * 65,
    "empty": "",
    "leading digit": "1admin",
    "leading dot": ".admin",
    "SQL quote and semicolon": "a'; DROP TABLE users; --",
    "path traversal": "../admin",
    "emoji": "admin\U0001f600",
    "uppercase": "Admin",
    "percent-encoded NUL": "admin%00",
    "HTML": "<script>x</script>",
}
#: Names that follow the rule, SQL reserved words included: accepted everywhere.
FINE = ["select", "user", "j.smith-2", "a", "z" + "9" * 63]

#: Control characters cannot be passed in a process's arguments (execve refuses NUL), so the CLI tries the rest.
NOT_IN_ARGV = {"NUL"}


@pytest.fixture
def portal(platform) -> Iterator[TestClient]:
    """The portal (in this process), with an admin user; requests carry no credentials unless given."""
    users.upsert_user(platform, "admin", ADMIN_PASSWORD, role="admin")
    with TestClient(create_app(load_config()), follow_redirects=False) as client:
        yield client


@pytest.fixture
def rest(portal, platform) -> TestClient:
    """The portal's REST API as the admin (API token)."""
    portal.headers["Authorization"] = f"Bearer {auth.create_token(platform, 'admin', 'hostile')[1]}"
    return portal


@pytest.fixture
def web(portal) -> Web:
    """The web admin, signed in as the admin in a browser-like client."""
    browser = Web(portal)
    browser.sign_in("admin", ADMIN_PASSWORD)
    return browser


def _figure(door: str, tried: int, refused: int, created: int) -> None:
    print(f"\nhostile usernames via {door}: tried {tried} / refused {refused} / created {created}")


def _names(platform) -> set[str]:
    return {u.username for u in users.list_users(platform)}


def test_the_rest_api_refuses_every_hostile_username(rest, platform):
    before = _names(platform)
    refused = 0
    for kind, name in HOSTILE.items():
        response = rest.post("/api/v1/users", json={"username": name, "password": PASSWORD, "role": "viewer"})
        assert response.status_code == 422, (kind, response.status_code, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON), kind
        assert RULE in response.json()["detail"], (kind, response.json())
        assert "Location" not in response.headers
        refused += 1
    created = len(_names(platform) - before)
    _figure("REST", len(HOSTILE), refused, created)
    assert (refused, created) == (len(HOSTILE), 0)
    assert [u["username"] for u in rest.get("/api/v1/users").json()] == ["admin"]
    for name in FINE:
        made = rest.post("/api/v1/users", json={"username": name, "password": PASSWORD})
        assert made.status_code == 201, (name, made.text)
        assert made.headers["location"] == f"/api/v1/users/{name}"


def test_the_web_admin_refuses_every_hostile_username_in_its_form(web: Web, platform):
    before = _names(platform)
    refused = 0
    for kind, name in HOSTILE.items():
        web.get("/admin/users")
        response = web.post("/admin/users", {"username": name, "password": PASSWORD, "role": "viewer"})
        page = html.unescape(response.text)
        assert response.status_code == 422, (kind, response.status_code)
        # The error is shown on the users page, above the form, with the rule.
        assert 'id="add-user-title"' in page and RULE in page, kind
        refused += 1
    created = len(_names(platform) - before)
    _figure("web admin", len(HOSTILE), refused, created)
    assert (refused, created) == (len(HOSTILE), 0)
    web.get("/admin/users")
    assert web.post("/admin/users", {"username": "select", "password": PASSWORD}).status_code == 303


@pytest.mark.slow
def test_the_cli_refuses_every_hostile_username(run_cli, platform):
    before = _names(platform)
    tried = refused = 0
    for kind, name in HOSTILE.items():
        if kind in NOT_IN_ARGV:
            continue
        tried += 1
        proc = run_cli("db", "configure", "--username", name, "--password-stdin", input=PASSWORD + "\n")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, (kind, proc.stdout, proc.stderr)
        assert "Traceback" not in out, out
        assert re.search(r"^Error: ", proc.stderr, re.M) and re.search(r"^Fix: ", proc.stderr, re.M), proc.stderr
        assert RULE in proc.stderr, (kind, proc.stderr)
        # Shown escaped: a control character never reaches the terminal as itself.
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out), (kind, out)
        refused += 1
    created = len(_names(platform) - before)
    _figure("CLI (db configure --username)", tried, refused, created)
    assert (refused, created) == (tried, 0)
    assert tried >= 12
    proc = run_cli("db", "configure", "--username", "user", "--password-stdin", input=PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr
    assert _names(platform) - before == {"user"}


def test_a_user_made_before_the_rule_still_signs_in_and_can_be_reset(platform, portal, run_cli):
    from storekeeper.platform.models import User

    with platform.session() as session:  # as an older version, which took any name, would have stored it
        session.add(User(username="Old Admin", password_hash=PasswordHasher().hash(ADMIN_PASSWORD), role="admin"))
    signed_in = portal.post("/api/v1/auth/token", json={"username": "Old Admin", "password": ADMIN_PASSWORD})
    assert signed_in.status_code == 201, signed_in.text
    # Its password can still be reset from the CLI (the name is kept; only new names must follow the rule).
    proc = run_cli("db", "configure", "--username", "Old Admin", "--password-stdin", input=PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr
    assert portal.post("/api/v1/auth/token", json={"username": "Old Admin", "password": PASSWORD}).status_code == 201
