"""Proxy headers and the body limit against a real ``storekeeper start`` over loopback.

What an attacker on the network would try: forge ``X-Forwarded-For`` to get a
fresh sign-in counter on every guess, and stream a huge chunked body to eat the
server's memory. The server's memory is read from ``/proc/PID/status``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from storekeeper import users
from tests.conftest import storekeeper_exe
from tests.portal.conftest import ADMIN_PASSWORD

MIB = 1024 * 1024
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(home: Path, **env: str) -> Iterator[tuple[httpx.Client, int, int]]:
    """Run ``storekeeper start`` (one worker: the server is this one process); yield (client, port, pid)."""
    port = _free_port()
    proc = subprocess.Popen(
        [storekeeper_exe(), "start", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "STOREKEEPER_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the portal did not start"
                    time.sleep(0.2)
            yield http, port, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "Traceback" not in err, err


def _wrong_password(http: httpx.Client, forwarded_for: str) -> int:
    return http.post(
        "/api/v1/auth/token",
        json={"username": "admin", "password": "not-the-password"},
        headers={"X-Forwarded-For": forwarded_for},
    ).status_code


def test_forty_wrong_passwords_with_forged_forwarded_for_from_loopback_are_throttled(sk_home, platform):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD)
    with served(sk_home) as (http, _, _):
        codes = [_wrong_password(http, f"203.0.113.{n}, 198.51.100.{n}") for n in range(40)]
        right = http.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    print(f"\nforged X-Forwarded-For: tried 40 / 401 {codes.count(401)} / 429 {codes.count(429)}")
    assert codes == [401] * 5 + [429] * 35
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0  # the real address is blocked


def test_forwarded_for_is_believed_only_from_portal_forwarded_allow_ips(sk_home, platform):
    users.upsert_user(platform, "admin", ADMIN_PASSWORD)
    with served(sk_home, STOREKEEPER_PORTAL_FORWARDED_ALLOW_IPS="127.0.0.1") as (http, _, _):
        # Behind a trusted proxy each forwarded client has its own counter...
        assert [_wrong_password(http, f"203.0.113.{n}") for n in range(10)] == [401] * 10
        # ... and one client is throttled by the address the proxy forwarded.
        assert [_wrong_password(http, "198.51.100.7") for _ in range(6)] == [401] * 5 + [429]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _stream_chunked(
    port: int, path: str, total: int, chunk: int = 256 * 1024, content_type: str = "application/json"
) -> tuple[bytes, int]:
    """Send a chunked body of up to ``total`` bytes until the server answers; return (answer, bytes sent)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    frame = f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n"
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending = memoryview(frame)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < total else [], [], 1)
            if readable:
                break
            if writable:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                pending = pending[n:]
                if not pending:
                    sent += chunk
                    pending = memoryview(frame)
        sock.setblocking(True)
        try:
            while data := sock.recv(65536):
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def _declared(port: int, path: str, length: int) -> bytes:
    """Announce a body of ``length`` bytes, send none of it, and return the answer."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def test_a_200_mb_chunked_body_is_refused_without_the_server_growing(sk_home, platform):
    with served(sk_home) as (_, port, pid):
        warm, _ = _stream_chunked(port, "/api/v1/auth/token", 4 * MIB)  # load every code path once
        assert warm.startswith(b"HTTP/1.1 413")
        before = _rss_kb(pid)
        answers = []
        for path, content_type in (
            ("/api/v1/auth/token", "application/json"),
            ("/admin/login", "application/x-www-form-urlencoded"),
            ("/apps/links/links", "application/json"),
        ):
            answer, sent = _stream_chunked(port, path, 200 * MIB, content_type=content_type)
            answers.append((path, answer, sent))
        declared = _declared(port, "/api/v1/users", 200 * MIB)
        grown = _rss_kb(pid) - before
    for path, answer, sent in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), (path, answer[:300])
        assert b"content-type: application/problem+json" in head.lower(), head
        assert b"portal.max_body_bytes" in body
        print(f"\n{path}: refused a 200 MB chunked body after {sent / MIB:.1f} MB were sent")
    # A declared Content-Length over the limit is answered before a byte of the body is sent.
    assert declared.startswith(b"HTTP/1.1 413") and b"application/problem+json" in declared.lower()
    print(f"server RSS grew by {grown} kB over three 200 MB bodies")
    assert grown < 8 * 1024
