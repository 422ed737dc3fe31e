"""Smoke test of bench/endpoint_costs.py: a --quick run answers every variant with 200 and the right links."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "endpoint_costs.py"

pytest.importorskip("links.model", reason="the links example app is not installed (pip install -e examples/links)")
pytest.importorskip("orjson")
pytest.importorskip("greenlet", reason="SQLAlchemy's asyncio extension needs greenlet")


@pytest.mark.slow
def test_quick_run_measures_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "endpoints.json"
    rows = 120
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--rows", str(rows), "--json-out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == doc
    assert doc["mode"] == "quick" and doc["rows"] == rows and doc["baseline"] == "orm_entities_session_tx"
    assert {"date", "nproc", "cpu_model", "loadavg_1m_at_start", "postgresql"} <= set(doc["machine"])

    variants = doc["variants"]
    assert set(variants) == {
        "orm_entities_session_tx",
        "orm_columns_session_tx",
        "core_connection_tx",
        "core_autocommit_stdlib_json",
        "core_autocommit_prebuilt_stdlib_json",
        "core_autocommit_prebuilt",
        "core_autocommit_prebuilt_return_dict",
        "async_def_blocking_call",
        "async_def_run_in_threadpool",
        "sqlalchemy_asyncio",
        "paging_5000_rows_no_limit",
        "sync_dependency",
        "async_dependency",
    }
    for name, v in variants.items():
        assert v["statuses"] == {"200": v["statuses"]["200"]} and v["statuses"]["200"] > 0, name
        assert v["all_200"] and v["links_ok"], name
        assert v["links"] == (rows if name == "paging_5000_rows_no_limit" else 50), name
        for key in ("cpu_ms_per_request", "wall_ms_per_request"):
            assert v[key]["median"] > 0 and 0 < v[key]["min"] <= v[key]["median"], (name, key)
            assert len(v[key]["rounds"]) == doc["plan"]["rounds"], (name, key)
        assert v["cpu_ratio_to_baseline"] > 0 and v["wall_ratio_to_baseline"] > 0, name
    assert variants["orm_entities_session_tx"]["cpu_ratio_to_baseline"] == 1.0
    assert doc["all_ok"] is True
    assert "every variant answered 200 with the expected links: True" in proc.stderr
