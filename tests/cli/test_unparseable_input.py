"""Every input the CLI cannot parse ends in one ``Error:`` line and one ``Fix:`` line, never a traceback.

Each case runs the installed ``storekeeper`` command as a real process, as a user
would, and checks that nothing was created or changed.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from storekeeper import services
from storekeeper.platform.models import Service

LONG_LABEL = "a" * 64 + ".example.com"
SECRET = "pw-never-shown"

#: (arguments, exit code, what the Error/Fix lines must mention)
CASES: list[tuple[list[str], int, list[str]]] = [
    (
        ["services", "create", "persistent", "--name", "a", "--url", f"postgresql://u:{SECRET}@h:badport/x"],
        1,
        ["--url"],
    ),
    (["services", "create", "persistent", "--name", "a", "--url", f"postgresql://u:{SECRET}@[::1/x"], 1, ["--url"]),
    (["services", "create", "persistent", "--name", "a", "--url", f"postgresql://u:{SECRET}@h:99999/x"], 1, ["port"]),
    (["services", "create", "persistent", "--name", "a", "--connection", f"u:{SECRET}@h:port"], 1, ["Port"]),
    (["services", "create", "persistent", "--name", "a", "--connection", f"u:{SECRET}@[::1"], 1, ["IPv6"]),
    (["services", "create", "persistent", "--name", "a", "--connection", f"u:{SECRET}@{LONG_LABEL}"], 1, ["63"]),
    (
        ["services", "create", "persistent", "--name", "a", "--url", f"postgresql://u:{SECRET}@{LONG_LABEL}/x"],
        1,
        ["63"],
    ),
    (
        ["services", "create", "persistent", "--name", "a", "--connection", f"u:{SECRET}@h", "--pool-size", "abc"],
        2,
        ["--pool-size", "storekeeper services create persistent --help"],
    ),
    (["services", "update", "local", "--port", "5432x"], 2, ["--port"]),
    (["services", "update", "local", "--host", LONG_LABEL], 1, ["63 at most"]),
    (["services", "list", "--bogus"], 2, ["--bogus"]),
    (["start", "--port", "abc"], 2, ["--port"]),
    (["audit", "--limit", "many"], 2, ["--limit"]),
    (["settings", "--set", "portal.port", "abc"], 1, ["portal.port"]),
    (["settings", "--set", "portal.port", "70000"], 1, ["portal.port"]),
    (
        ["stores", "create", "my_first_app", "s1", "--connection", "primary", "--initializer", "os.system"],
        1,
        ["os.system", "my_first_app.module.function"],
    ),
]


@pytest.fixture
def recorded(platform, service):
    """The platform's services and the config file, to check that nothing changed."""

    def snapshot() -> tuple[list[object], str]:
        config = (platform.config.home / "config.yml").read_text()
        return [(s.name, s.host, s.port) for s in services.list_services(platform)], config

    return snapshot


@pytest.mark.slow
def test_unparseable_input_gets_error_and_fix_and_changes_nothing(run_cli, recorded):
    before = recorded()
    for args, code, needles in CASES:
        proc = run_cli(*args)
        out = proc.stdout + proc.stderr
        assert proc.returncode == code, (args, proc.returncode, out)
        assert "Traceback" not in out, (args, out)
        assert len(re.findall(r"^Error: ", proc.stderr, re.M)) == 1, (args, proc.stderr)
        assert len(re.findall(r"^Fix: ", proc.stderr, re.M)) == 1, (args, proc.stderr)
        for needle in needles:
            assert needle in proc.stderr, (args, needle, proc.stderr)
        assert SECRET not in out, (args, out)
    assert recorded() == before
    print(f"\nunparseable CLI inputs: tried {len(CASES)} / Error+Fix {len(CASES)} / tracebacks 0")


def test_a_bad_host_recorded_before_hosts_were_checked_is_an_error_not_a_traceback(run_cli, platform, service):
    services.create_service(platform, name="legacy", host="127.0.0.1", username="u", password="p", connect_timeout=2)
    with platform.engine.begin() as conn:  # as an older version, which took any host, would have stored it
        conn.execute(update(Service).where(Service.name == "legacy").values(host=LONG_LABEL))
    proc = run_cli("services", "test", "legacy")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "Error: " in proc.stderr and "Fix: storekeeper services test legacy" in proc.stderr
    assert run_cli("services", "list").returncode == 0
    fixed = run_cli("services", "update", "legacy", "--host", "127.0.0.1")
    assert fixed.returncode == 0, fixed.stderr
