"""What the benchmark scripts share: the machine a run was on, and writing its JSON.

The scripts run as ``python bench/NAME.py``, so this module is importable as ``benchlib``.

Example::

    from benchlib import emit, machine_info

    result["machine"] = machine_info(pg.version(), "private", loadavg_at_start, modules=("fastapi",))
    emit(result, args.json_out)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import platform as pyplatform
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def machine_info(
    server_version: str, server_kind: str, loadavg_at_start: float, modules: Sequence[str] = ()
) -> dict[str, Any]:
    """Return date, CPU, OS, Python, PostgreSQL and load average, and the versions of SQLAlchemy,
    psycopg and ``modules`` (imported by name; each must have ``__version__``)."""
    cpu = pyplatform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    info: dict[str, Any] = {
        "loadavg_1m_at_start": loadavg_at_start,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": nproc,
        "cpu_model": cpu,
        "os": pyplatform.platform(),
        "python": pyplatform.python_version(),
        "postgresql": server_version,
        "server": server_kind,
    }
    for name in ("sqlalchemy", "psycopg", *modules):
        info[name] = importlib.import_module(name).__version__
    return info


def admin_params(url: str) -> dict[str, Any]:
    """Return psycopg's connection keywords for a SQLAlchemy URL (the database defaults to ``postgres``)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username,
        "password": u.password,
        "dbname": u.database or "postgres",
    }


def emit(result: dict[str, Any], json_out: Path | None) -> None:
    """Print ``result`` as JSON on stdout and, when ``json_out`` is given, write it there too."""
    text = json.dumps(result, indent=2)
    print(text)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
