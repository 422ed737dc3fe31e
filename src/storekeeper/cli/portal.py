"""``storekeeper start``: serve the portal (web admin and REST API) with uvicorn or Granian."""

from __future__ import annotations

import importlib.util
from enum import StrEnum
from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.errors import InputError
from storekeeper.ports import bind_error

#: The app factory each worker process imports.
APP_FACTORY = "storekeeper.portal.app:create_app"
#: How to get Granian when ``--server granian`` is asked for without it.
GRANIAN_FIX = "pip install 'storekeeper[granian]'"


class ServerName(StrEnum):
    """The HTTP servers ``storekeeper start`` can run the portal on."""

    uvicorn = "uvicorn"
    granian = "granian"


HostOpt = Annotated[
    str | None, typer.Option("--host", help="Address to listen on \\[default: portal.host, 127.0.0.1].")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="Port to listen on \\[default: portal.port, 8000].", min=1, max=65535)
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", "-w", metavar="N", help="Worker processes (each builds its own app).", min=1)
]
LogLevelOpt = Annotated[
    str,
    typer.Option("--log-level", help="Server log level: critical, error, warning, info, debug (uvicorn: trace too)."),
]
ServerOpt = Annotated[
    ServerName | None,
    typer.Option(
        "--server",
        help="HTTP server: uvicorn (pure Python; with several workers each has its own SO_REUSEPORT socket) "
        "or granian (Rust HTTP core; needs the granian extra) \\[default: portal.server, uvicorn].",
        case_sensitive=False,
    ),
]


def check_port_free(host: str, port: int) -> None:
    """Raise, naming the fix, when something already listens on host:port."""
    err = bind_error(host, port)
    if err is not None:
        raise InputError(
            f"Cannot serve the portal on {host}:{port}: {err.strerror or err} (is a portal already running?).",
            hint=f"stop the other server, or pick another port: --port {port + 1 if port < 65535 else 8000}",
        )


def granian_installed() -> bool:
    """Whether Granian can be imported here (found without importing it)."""
    return importlib.util.find_spec("granian") is not None


def require_granian() -> None:
    """Exit with code 2 and the fix when Granian is not installed."""
    if not granian_installed():
        render.error("--server granian needs Granian, which is not installed.", GRANIAN_FIX)
        raise typer.Exit(2)


def serve(
    host: str,
    port: int,
    workers: int,
    log_level: str,
    *,
    announce: str | None = None,
    server: str = ServerName.uvicorn.value,
) -> None:
    """Serve the portal's app factory in the foreground until Ctrl-C or SIGTERM (``announce`` first).

    ``server`` is ``"uvicorn"`` or ``"granian"``. With uvicorn and several workers, each worker
    listens on its own ``SO_REUSEPORT`` socket (:mod:`storekeeper.portal.serving`), so the
    kernel spreads connections across them; one worker runs in this process.
    """
    if server == ServerName.granian.value:
        require_granian()
    check_port_free(host, port)
    if announce:
        render.ok(announce)
    # Workers are separate processes sharing nothing but the platform database, which is
    # where sessions' users, tokens, throttling and jobs live: any worker can answer any request.
    # uvicorn's own proxy-header handling (which believes 127.0.0.1 by default) stays off: the app
    # believes X-Forwarded-* only from portal.forwarded_allow_ips (storekeeper.portal.limits).
    if server == ServerName.granian.value:
        _serve_granian(host, port, workers, log_level)
        return
    import uvicorn

    from storekeeper.portal import serving

    if workers > 1 and serving.reuseport_available():
        spec = serving.WorkerSpec(app=APP_FACTORY, host=host, port=port, log_level=log_level)
        code = serving.Supervisor(spec, workers).run()
        if code:
            raise typer.Exit(code)
        return
    uvicorn.run(
        APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level, proxy_headers=False
    )


def _serve_granian(host: str, port: int, workers: int, log_level: str) -> None:
    """Run Granian (ASGI, the same app factory) with ``workers`` processes until Ctrl-C or SIGTERM."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    level = LogLevels(log_level.lower()) if log_level.lower() in LogLevels.__members__ else LogLevels.debug
    Server(
        APP_FACTORY,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        log_level=level,
        log_access=False,
        respawn_failed_workers=True,
    ).serve()


def start(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: WorkersOpt = 1,
    log_level: LogLevelOpt = "info",
    server: ServerOpt = None,
) -> None:
    """Serve the portal: web admin, REST API at /api/v1, docs at /docs, health at /healthz.

    Runs uvicorn by default; with --workers N (N > 1) each worker process has its own
    listening socket (SO_REUSEPORT), so the kernel spreads connections across the workers,
    and a worker that dies is replaced. --server granian runs Granian instead (pip install
    'storekeeper[granian]'). Ctrl-C or SIGTERM stops the portal after the requests in flight.
    """
    if server is ServerName.granian:
        require_granian()  # before anything is read or written
    from storekeeper.config import load_config
    from storekeeper.platform import open_platform

    config = load_config()
    chosen = server.value if server is not None else config.portal_server
    if chosen == ServerName.granian.value:
        require_granian()
    open_platform(config).close()  # fail here, once, with the fix, rather than in every worker
    host, port = host or config.portal_host, port or config.portal_port
    serve(
        host,
        port,
        workers,
        log_level,
        server=chosen,
        announce=f"Serving the portal on http://{host}:{port} with {chosen} ({workers} worker(s)); API docs at /docs",
    )
