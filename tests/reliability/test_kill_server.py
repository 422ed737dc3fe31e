"""kill -9 of the database server at points spread over sync, refresh, drop, dynamic create and rotate.

The command runs in a thread of this process (the core, as the CLI calls it);
at the kill point the postmaster gets SIGKILL, the server is started again on the
same data directory and port, and the next command runs. See
:mod:`tests.reliability.kill_harness` for the points and what is counted.
Figures: tried (kills that landed) / failed (stuck stores, hung commands) /
lost (stores listed ready that are not).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.conftest import CrashServer, Home
from tests.reliability.kill_harness import CREATE, DROP, REFRESH, ROTATE, STORES, SYNC, KillRun, selected

pytestmark = pytest.mark.slow

INVALID_DATABASE = (
    "issue 12: a server crash during DROP DATABASE (points *@sql:DROP DATABASE, often the delays) leaves an invalid "
    "database (datconnlimit=-2) still listed initialized; the next sync fails 'cannot connect to invalid database' "
    "(initializer) or 'cannot alter invalid database' (recreate), `stores drop` fails 'cannot alter invalid database'"
)
#: Kinds known to fail, with why (each becomes a strict xfail); empty since issue 12's fixes.
KNOWN: dict[str, str] = {}
KINDS = [SYNC, REFRESH, DROP, CREATE, ROTATE]


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.xfail(reason=KNOWN[k], strict=True)) if k in KNOWN else k for k in KINDS]
)
def test_server_killed(
    kind: str,
    crash_home: Callable[[list[str]], tuple[Home, list[str]]],
    crash_server: CrashServer,
    tmp_path: Path,
) -> None:
    home, statics = crash_home(STORES[kind])
    run = KillRun(home, crash_server, statics, target="server", logs=tmp_path, case=f"kill -9 server during {kind}")
    for point in selected("server", kind):
        run.run(point)
    run.figures.check()
