"""kill -9 of the database server, or of the ``storekeeper`` process, at points spread over sync, refresh,
drop, dynamic create and rotate.

* ``server``: the command runs in a thread of this process (the core, as the CLI calls
  it); at the kill point the postmaster gets SIGKILL, the server is started again on the
  same data directory and port, and the next command runs.
* ``process``: the command is a real ``storekeeper`` process; at the kill point it gets
  SIGKILL (the server finishes the statement it was running), and the next command runs.

See :mod:`tests.reliability.kill_harness` for the points and what is counted.
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

#: (target, kind) pairs known to fail, with why (each becomes a strict xfail); empty since issue 12's fixes.
KNOWN: dict[tuple[str, str], str] = {}
CASES = [(target, kind) for target in ("server", "process") for kind in (SYNC, REFRESH, DROP, CREATE, ROTATE)]
VICTIM = {"server": "server", "process": "storekeeper"}


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        pytest.param(*case, marks=pytest.mark.xfail(reason=KNOWN[case], strict=True)) if case in KNOWN else case
        for case in CASES
    ],
)
def test_killed(
    target: str,
    kind: str,
    crash_home: Callable[[list[str]], tuple[Home, list[str]]],
    crash_server: CrashServer,
    tmp_path: Path,
) -> None:
    home, statics = crash_home(STORES[kind])
    case = f"kill -9 {VICTIM[target]} during {kind}"
    run = KillRun(home, crash_server, statics, target=target, logs=tmp_path, case=case)
    for point in selected(target, kind):
        run.run(point)
    run.figures.check()
