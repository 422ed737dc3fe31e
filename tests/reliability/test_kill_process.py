"""kill -9 of the ``storekeeper`` process at points spread over sync, refresh, drop, dynamic create and rotate.

The command is a real ``storekeeper`` process; at the kill point it gets SIGKILL
(the server finishes the statement it was running), and the next command runs.
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

#: Kinds known to fail, with why (each becomes a strict xfail); empty since issue 12's fixes.
KNOWN: dict[str, str] = {}
KINDS = [SYNC, REFRESH, DROP, CREATE, ROTATE]


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.xfail(reason=KNOWN[k], strict=True)) if k in KNOWN else k for k in KINDS]
)
def test_storekeeper_killed(
    kind: str,
    crash_home: Callable[[list[str]], tuple[Home, list[str]]],
    crash_server: CrashServer,
    tmp_path: Path,
) -> None:
    home, statics = crash_home(STORES[kind])
    run = KillRun(
        home, crash_server, statics, target="process", logs=tmp_path, case=f"kill -9 storekeeper during {kind}"
    )
    for point in selected("process", kind):
        run.run(point)
    run.figures.check()
