"""Serve the portal with several uvicorn workers, each on its own ``SO_REUSEPORT`` listening socket.

``uvicorn.run(workers=N)`` binds one socket in the master and hands it to every worker: the
workers then race to accept on it, and a few long-lived keep-alive clients (a reverse proxy's
upstream pool, a load generator) often all land on one worker while the others idle. Here
each worker binds its own socket to the same host and port with ``SO_REUSEPORT``, and the
kernel spreads new connections across the workers' sockets by a hash of the client's address.

The master (:class:`Supervisor`) only starts and watches the workers:

* each worker is a ``spawn`` process running :func:`run_worker`: it binds its socket
  (:func:`listening_socket`) and runs ``uvicorn.Server(...).run(sockets=[sock])``;
* SIGINT or SIGTERM to the master is passed on to the workers as SIGTERM (graceful:
  uvicorn finishes the requests in flight and runs the lifespan shutdown); a second
  signal passes SIGINT (uvicorn's force quit), a third SIGKILL; the master returns when
  every worker has stopped;
* a worker that dies on its own is replaced, with a warning naming its pid and exit code,
  at most once a second per worker slot (less often while it keeps dying young);
* a worker's first start that fails (exit code 3, uvicorn's for a failed app startup, also
  used here when the port cannot be bound; or 1 within seconds, as when the app cannot be
  imported) stops the lot, and :meth:`Supervisor.run` returns 1: restarting would fail the same way.

A worker whose master disappears (killed with SIGKILL) shuts itself down within a second or
so, so no orphan keeps serving the port. Where the platform has no ``SO_REUSEPORT``
(:func:`reuseport_available`), ``storekeeper start`` uses ``uvicorn.run(workers=N)`` instead.

Example::

    from storekeeper.portal.serving import Supervisor, WorkerSpec

    spec = WorkerSpec(app="storekeeper.portal.app:create_app", host="127.0.0.1", port=8000, log_level="info")
    exit_code = Supervisor(spec, workers=4).run()  # until SIGINT or SIGTERM
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from types import FrameType

__all__ = [
    "BACKLOG",
    "STARTUP_FAILURE",
    "Supervisor",
    "WorkerSpec",
    "listening_socket",
    "reuseport_available",
    "run_worker",
]

#: The listen backlog of each worker's socket.
BACKLOG = 2048
#: The exit code of a uvicorn worker that failed to start (``uvicorn.config.STARTUP_FAILURE``).
STARTUP_FAILURE = 3
#: The shortest time between two starts of a worker in one slot, in seconds.
RESTART_INTERVAL = 1.0
#: The longest wait before restarting a worker that keeps dying young, in seconds.
MAX_RESTART_DELAY = 30.0
#: A worker that lived less than this (seconds) died young: the next restart waits twice as long.
YOUNG = 10.0
#: How often the master looks at its signals and workers when nothing happens, in seconds.
POLL = 0.2

logger = logging.getLogger("uvicorn.error")


def reuseport_available() -> bool:
    """Whether this platform has ``SO_REUSEPORT`` (Linux, the BSDs and macOS do; Windows does not)."""
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """Bind and listen on ``host:port`` with ``SO_REUSEADDR`` and ``SO_REUSEPORT``; return the socket.

    IPv6 when ``host`` holds a colon, else IPv4, as uvicorn's ``Config.bind_socket`` decides.
    Raises :class:`OSError` when the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class WorkerSpec:
    """What each worker serves and how; picklable, as it goes to ``spawn`` processes.

    ``app`` is an import string of an app factory (``"package.module:create_app"``).
    """

    app: str
    host: str
    port: int
    log_level: str = "info"


def run_worker(spec: WorkerSpec) -> None:
    """A worker process's body: bind its own socket, serve with uvicorn until SIGTERM or SIGINT.

    Exits with :data:`STARTUP_FAILURE` when the socket cannot be bound (uvicorn exits so when
    the app's startup fails).
    """
    import uvicorn

    # proxy_headers=False: uvicorn believes X-Forwarded-* from 127.0.0.1 by default; the app
    # believes them only from portal.forwarded_allow_ips (storekeeper.portal.limits).
    config = uvicorn.Config(
        spec.app, factory=True, host=spec.host, port=spec.port, log_level=spec.log_level, proxy_headers=False
    )
    try:
        sock = listening_socket(spec.host, spec.port)
    except OSError as err:
        logger.error("Worker [%d] cannot listen on %s:%d: %s", os.getpid(), spec.host, spec.port, err)
        sys.exit(STARTUP_FAILURE)
    _stop_when_orphaned()
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it stopped on: expected
        uvicorn.Server(config).run(sockets=[sock])


def _stop_when_orphaned(interval: float = 1.0) -> None:
    """Send this process SIGTERM (uvicorn's graceful stop) once its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="storekeeper-parent-watch", daemon=True).start()


@dataclass
class _Slot:
    """One worker position: its current process and when to (re)start it."""

    index: int
    process: SpawnProcess | None = None
    started_at: float = 0.0
    #: When the next start may happen (monotonic); 0: now.
    start_after: float = 0.0
    #: The wait before the next restart when this one dies young.
    delay: float = RESTART_INTERVAL
    #: How many processes this slot has started.
    starts: int = 0


@dataclass
class Supervisor:
    """Start ``workers`` processes running :func:`run_worker`, keep them running, stop them on a signal.

    :meth:`run` blocks; it must be called from the main thread (it installs SIGINT and
    SIGTERM handlers, and puts the previous ones back when it returns).
    """

    spec: WorkerSpec
    workers: int
    _slots: list[_Slot] = field(default_factory=list, init=False)
    _signals: list[int] = field(default_factory=list, init=False)
    _stop_signals: int = field(default=0, init=False)
    _exit_code: int = field(default=0, init=False)

    def run(self) -> int:
        """Serve until a signal (returns 0) or a worker's failed first start (returns 1)."""
        import uvicorn

        uvicorn.Config(self.spec.app, log_level=self.spec.log_level)  # sets up uvicorn's logging, as in the workers
        context = multiprocessing.get_context("spawn")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            logger.info("Started parent process [%d]", os.getpid())
            self._slots = [_Slot(index) for index in range(self.workers)]
            for slot in self._slots:
                self._start(slot, context)
            while True:
                self._handle_signals()
                if self._stop_signals:
                    if not self._alive():
                        break
                else:
                    self._reap_and_restart(context)
                sentinels = [s.process.sentinel for s in self._slots if s.process is not None and s.process.is_alive()]
                if sentinels:
                    wait(sentinels, timeout=POLL)
                else:
                    time.sleep(POLL)
            for slot in self._slots:
                if slot.process is not None:
                    slot.process.join()
            logger.info("Stopping parent process [%d]", os.getpid())
            return self._exit_code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        return [s.process.pid for s in self._slots if s.process is not None and s.process.pid is not None]

    # -- internals ----------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            self._stop(f"Received {signal.Signals(signum).name}")

    def _stop(self, why: str) -> None:
        """Pass a stop on to the workers: SIGTERM the first time, then SIGINT (force quit), then SIGKILL."""
        self._stop_signals += 1
        forward = {1: signal.SIGTERM, 2: signal.SIGINT}.get(self._stop_signals, signal.SIGKILL)
        logger.info("%s; stopping the workers (%s).", why, forward.name)
        for slot in self._slots:
            process = slot.process
            if process is not None and process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):  # it has just exited
                    os.kill(process.pid, forward)

    def _alive(self) -> bool:
        return any(s.process is not None and s.process.is_alive() for s in self._slots)

    def _start(self, slot: _Slot, context: multiprocessing.context.SpawnContext) -> None:
        process = context.Process(
            target=run_worker, args=(self.spec,), name=f"storekeeper-worker-{slot.index + 1}", daemon=False
        )
        process.start()
        slot.process, slot.started_at, slot.start_after = process, time.monotonic(), 0.0
        slot.starts += 1

    def _reap_and_restart(self, context: multiprocessing.context.SpawnContext) -> None:
        now = time.monotonic()
        for slot in self._slots:
            process = slot.process
            if process is not None and not process.is_alive():
                process.join()
                code = process.exitcode
                young = now - slot.started_at < YOUNG
                if slot.starts == 1 and (code == STARTUP_FAILURE or (code == 1 and young)):  # would fail again
                    logger.error("Worker [%s] failed to start (exit code %s); stopping the portal.", process.pid, code)
                    self._exit_code = 1
                    self._stop("A worker failed to start")
                    return
                if young:  # dying young again and again: wait longer each time
                    wait_for, slot.delay = slot.delay, min(slot.delay * 2, MAX_RESTART_DELAY)
                else:
                    wait_for, slot.delay = 0.0, RESTART_INTERVAL
                slot.start_after = max(slot.started_at + RESTART_INTERVAL, now + wait_for)
                logger.warning(
                    "Worker [%s] died unexpectedly (exit code %s); starting a new one%s.",
                    process.pid,
                    code,
                    f" in {slot.start_after - now:.1f} s" if slot.start_after > now + 0.05 else "",
                )
                slot.process = None
            if slot.process is None and now >= slot.start_after:
                self._start(slot, context)
