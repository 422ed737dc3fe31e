"""``storekeeper start``: a real uvicorn with several workers, reached over loopback only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from storekeeper import users
from tests.conftest import storekeeper_exe
from tests.portal.conftest import ADMIN_PASSWORD


def _wait_until_up(http: httpx.Client, url: str, proc: subprocess.Popen[str], timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            return http.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"the portal did not answer {url} within {timeout}s")


def test_start_serves_the_portal_with_two_workers(sk_home: Path, platform, closed_port):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD, role="admin")
    base = f"http://127.0.0.1:{closed_port}"
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home)}
    proc = subprocess.Popen(
        [
            storekeeper_exe(),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(closed_port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # trust_env=False: loopback only, never through a proxy from the environment.
    with httpx.Client(base_url=base, trust_env=False) as http:
        try:
            _exercise(http, proc)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
    assert "Serving the portal" in out
    assert "Traceback" not in err


def _exercise(http: httpx.Client, proc: subprocess.Popen[str]) -> None:
    health = _wait_until_up(http, "/healthz", proc)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    token = http.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    # Whichever worker answers, the token (in the platform database) is good.
    for _ in range(6):
        me = http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["username"] == "admin"
    assert "storekeeper" in http.get("/docs").text


def test_start_on_an_unconfigured_home_names_the_fix(tmp_path: Path):
    env = {**os.environ, "STOREKEEPER_HOME": str(tmp_path / "fresh")}
    proc = subprocess.run([storekeeper_exe(), "start"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "storekeeper db configure" in proc.stderr
    assert "Traceback" not in proc.stderr
