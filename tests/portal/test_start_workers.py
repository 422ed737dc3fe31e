"""``storekeeper start --workers N``: one SO_REUSEPORT socket per uvicorn worker, a supervisor, and Granian.

Real processes on loopback, with the test PostgreSQL server registered as a service (so
``/healthz`` checks it). Which worker owns a connection is read from ``/proc``: the
established TCP sockets on the portal's port (``/proc/net/tcp``) against each worker's
open file descriptors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from storekeeper import users
from storekeeper.ports import bind_error
from tests.conftest import storekeeper_exe
from tests.portal.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: How long a stop may take, in seconds (a graceful uvicorn stop takes well under a second here).
STOP_BOUND = 30
#: Keep-alive connections opened at once: that 2 workers get them all is a 2 ** -31 chance.
CONNECTIONS = 32


class Portal:
    """``storekeeper start ARGS`` as a process, output to a log file; stopped with SIGKILL if still up at the end."""

    def __init__(self, home: Path, port: int, *args: str) -> None:
        self.port = port
        self.log = home.parent / f"start-{port}.log"
        env = {**os.environ, "STOREKEEPER_HOME": str(home)}
        cmd = [storekeeper_exe(), "start", "--host", "127.0.0.1", "--port", str(port), *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_up(self, timeout: float = 60) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                return self.http.get("/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"the portal did not answer within {timeout}s: {self.output()}")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def workers(self) -> list[int]:
        """The worker processes: the master's spawned children (not multiprocessing's resource tracker)."""
        return [pid for pid in self.children() if b"spawn_main" in _cmdline(pid)]

    def wait_for_workers(self, count: int, timeout: float = 60) -> list[int]:
        """Wait until ``count`` workers each listen on the port; return their pids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            pids = self.workers()
            if len(pids) == count and all(_listens(pid, self.port) for pid in pids):
                return pids
            time.sleep(0.2)
        raise AssertionError(f"not {count} workers listening within {timeout}s: {self.output()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig``; return the exit code once the portal has exited (within :data:`STOP_BOUND`)."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the portal did not stop within {STOP_BOUND}s: {self.output()}") from None

    def close(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            for pid in self.children():
                _kill(pid)
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start(sk_home: Path, platform, service, closed_port) -> Iterator:
    """Start the portal of the test home on a free port: ``start("--workers", "2")``."""
    users.upsert_user(platform, "admin", ADMIN_PASSWORD, role="admin")
    started: list[Portal] = []

    def _start(*args: str, port: int | None = None) -> Portal:
        portal = Portal(sk_home, port or closed_port, *args)
        started.append(portal)
        return portal

    yield _start
    for portal in started:
        portal.close()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets with local port ``port`` in ``state`` (``01`` established, ``0A`` listen)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found.add(int(fields[9]))
    return found


def _listens(pid: int, port: int) -> bool:
    return bool(_socket_inodes(pid) & _tcp_sockets(port, "0A"))


def _owners(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections on ``port`` each of ``pids`` holds."""
    established = _tcp_sockets(port, "01")
    return {pid: len(_socket_inodes(pid) & established) for pid in pids}


def _keep_alive_connections(port: int, count: int) -> list[socket.socket]:
    """Open ``count`` connections and get one /healthz answer on each, leaving them open (HTTP/1.1 keep-alive)."""
    conns = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conns.append(conn)
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    for conn in conns:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(4096)
            assert chunk, "the portal closed a keep-alive connection"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
        while len(body) < length:
            body += conn.recv(4096)
    return conns


@pytest.mark.slow
def test_two_uvicorn_workers_each_listen_and_share_the_connections(start):
    portal = start("--workers", "2", "--log-level", "warning")
    try:
        assert portal.wait_until_up().json() == {"status": "ok"}
        workers = portal.wait_for_workers(2)
        # Each worker has a listening socket of its own on the port (SO_REUSEPORT), none is shared.
        listeners = [_socket_inodes(pid) & _tcp_sockets(portal.port, "0A") for pid in workers]
        assert all(len(s) == 1 for s in listeners) and listeners[0] != listeners[1]
        admin = portal.http.get("/admin/login")
        assert admin.status_code == 200 and "password" in admin.text
        conns = _keep_alive_connections(portal.port, CONNECTIONS)
        try:
            owners = _owners(workers, portal.port)
            assert sum(owners.values()) >= CONNECTIONS, owners  # ours, and the test client's keep-alive one
            assert all(n > 0 for n in owners.values()), f"the kernel gave every connection to one worker: {owners}"
        finally:
            for conn in conns:
                conn.close()
        tracker = [pid for pid in portal.children() if pid not in workers]
        assert portal.stop(signal.SIGTERM) == 0, portal.output()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in [*workers, *tracker]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in [*workers, *tracker] if _alive(pid)], "a process outlived the portal"
        assert bind_error("127.0.0.1", portal.port) is None  # nothing listens any more (TIME_WAIT aside)
    finally:
        portal.close()
    out = portal.output()
    assert "Serving the portal" in out and "with uvicorn (2 worker(s))" in out
    assert "Traceback" not in out


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_portal_keeps_answering(start):
    portal = start("--workers", "2", "--log-level", "warning")
    try:
        portal.wait_until_up()
        victim, survivor = portal.wait_for_workers(2)
        portal.http.close()  # its keep-alive connection may be the victim's, which the kill resets
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(victim) and time.monotonic() < deadline:  # its socket closes when it is dead
            time.sleep(0.05)
        # While it is replaced, the other worker answers every new connection (its own socket is untouched).
        with httpx.Client(base_url=f"http://127.0.0.1:{portal.port}", trust_env=False, timeout=10) as fresh:
            for _ in range(10):
                assert fresh.get("/healthz", headers={"Connection": "close"}).status_code == 200
        replaced = portal.wait_for_workers(2, timeout=30)
        assert survivor in replaced and victim not in replaced
        assert f"Worker [{victim}] died unexpectedly (exit code -9)" in portal.output()
        with httpx.Client(base_url=f"http://127.0.0.1:{portal.port}", trust_env=False, timeout=10) as fresh:
            for _ in range(10):  # new connections: spread over both, the new worker included
                assert fresh.get("/healthz", headers={"Connection": "close"}).status_code == 200
        assert portal.stop(signal.SIGINT) == 0, portal.output()
    finally:
        portal.close()
    assert "Traceback" not in portal.output()


def test_a_taken_port_is_refused_before_anything_starts(start):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        portal = start("--workers", "2", port=port)
        assert portal.process.wait(timeout=60) == 1
        children = portal.children()
    out = portal.output()
    assert f"Cannot serve the portal on 127.0.0.1:{port}" in out and "--port" in out
    assert "Serving the portal" not in out and "Traceback" not in out
    assert children == []


def test_an_unknown_server_is_a_usage_error(sk_home: Path):
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home)}
    proc = subprocess.run(
        [storekeeper_exe(), "start", "--server", "nonsense"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "nonsense" in proc.stderr and "uvicorn" in proc.stderr and "granian" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_granian_not_installed_names_the_fix_and_changes_nothing(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from storekeeper.cli.main import cli

    monkeypatch.setitem(sys.modules, "granian", None)  # as if not installed: find_spec finds nothing
    home = tmp_path / "fresh"
    result = CliRunner().invoke(cli, ["start", "--server", "granian"], env={"STOREKEEPER_HOME": str(home)})
    assert result.exit_code == 2, result.output
    assert "pip install 'storekeeper[granian]'" in result.output
    assert not home.exists()  # no home, no secret key: nothing was written


def test_granian_is_not_imported_unless_chosen():
    code = (
        "import sys; from storekeeper.cli import main, portal; from storekeeper.portal import serving; "
        "assert 'granian' not in sys.modules, 'granian imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_granian_serves_the_portal_and_stops_on_sigterm(start):
    portal = start("--server", "granian", "--workers", "2", "--log-level", "warning")
    try:
        assert portal.wait_until_up().json() == {"status": "ok"}
        assert "storekeeper" in portal.http.get("/docs").text
        assert portal.http.get("/admin/login").status_code == 200
        token = portal.http.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
        me = portal.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token.json()['token']}"})
        assert me.json()["username"] == "admin"
        children = portal.children()
        portal.stop(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)], "a Granian worker outlived the portal"
    finally:
        portal.close()
    assert "with granian (2 worker(s))" in portal.output()


@pytest.mark.slow
def test_workers_that_cannot_start_stop_the_supervisor(closed_port):
    from storekeeper.portal.serving import Supervisor, WorkerSpec

    spec = WorkerSpec(app="storekeeper.no_such_module:create_app", host="127.0.0.1", port=closed_port)
    started = time.monotonic()
    assert Supervisor(spec, workers=2).run() == 1
    assert time.monotonic() - started < 60
