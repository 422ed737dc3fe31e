"""``storekeeper start`` as a real process on loopback, for the reliability tests that need one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import storekeeper_exe


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Portal:
    """The portal of ``home`` served by ``storekeeper start``; its stdout and stderr go to ``log``.

    Used as a context manager: entering waits until ``/healthz`` answers, leaving
    stops it with Ctrl-C (SIGINT), as an operator would.
    """

    def __init__(self, home: Path, port: int, *, workers: int = 1, log_level: str = "info") -> None:
        self.home = home
        self.port = port
        self.workers = workers
        self.log_level = log_level
        self.url = f"http://127.0.0.1:{port}"
        self.log = home.parent / f"portal-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Portal:
        env = {**os.environ, "STOREKEEPER_HOME": str(self.home)}
        args = [storekeeper_exe(), "start", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--workers", str(self.workers), "--log-level", self.log_level]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the portal exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise AssertionError(f"the portal did not answer in 90 s: {self.log.read_text()}")

    def pids(self) -> list[int]:
        """The portal's process and its descendants (its workers)."""
        assert self.process is not None
        found, frontier = [], [self.process.pid]
        while frontier:
            pid = frontier.pop()
            found.append(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children")
            if children.exists():
                frontier += [int(c) for c in children.read_text().split()]
        return found

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
