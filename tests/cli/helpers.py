"""Assertions the CLI tests share."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

from typer.testing import Result


def ok(result: Result) -> Result:
    """Assert the command succeeded, showing its output when it did not."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def fails(result: Result, *needles: str) -> str:
    """Assert the command failed with exit code 1 and an Error/Fix pair; return stderr."""
    assert result.exit_code == 1, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    err = result.stderr
    assert "Error: " in err, err
    assert "Fix: " in err, err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    return err


def as_json(result: Result) -> Any:
    """Parse a successful command's stdout as JSON."""
    ok(result)
    return json.loads(result.stdout)


def closed_port() -> int:
    """Return a local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_fails(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert a real ``storekeeper`` process exited 1 with one Error line and one Fix line, no traceback."""
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert len([line for line in lines if line.startswith("Error: ")]) == 1, proc.stderr
    assert len([line for line in lines if line.startswith("Fix: ")]) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, f"{needle!r} not in:\n{proc.stderr}"
    return proc.stderr


def process_ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert a real ``storekeeper`` process exited 0."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def run_in_terminal(args: list[str], answer: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``storekeeper ARGS`` on a pseudo-terminal, type ``answer`` at its confirmation prompt.

    Returns the exit code and everything the command wrote to the terminal.
    """
    import os
    import pty
    import select
    import time

    from tests.conftest import storekeeper_exe

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [storekeeper_exe(), *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if not answered and b"Continue?" in seen:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, seen.decode(errors="replace")
