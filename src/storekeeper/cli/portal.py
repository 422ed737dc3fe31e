"""``storekeeper start``: serve the portal (web admin and REST API) with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render
from storekeeper.errors import InputError
from storekeeper.ports import bind_error

#: The app factory uvicorn imports in each worker process.
APP_FACTORY = "storekeeper.portal.app:create_app"

HostOpt = Annotated[
    str | None, typer.Option("--host", help="Address to listen on \\[default: portal.host, 127.0.0.1].")
]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="Port to listen on \\[default: portal.port, 8000].", min=1, max=65535)
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", "-w", metavar="N", help="Worker processes (each builds its own app).", min=1)
]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="uvicorn log level.")]


def check_port_free(host: str, port: int) -> None:
    """Raise, naming the fix, when something already listens on host:port."""
    err = bind_error(host, port)
    if err is not None:
        raise InputError(
            f"Cannot serve the portal on {host}:{port}: {err.strerror or err} (is a portal already running?).",
            hint=f"stop the other server, or pick another port: --port {port + 1 if port < 65535 else 8000}",
        )


def serve(host: str, port: int, workers: int, log_level: str, *, announce: str | None = None) -> None:
    """Run uvicorn with the portal's app factory in the foreground until Ctrl-C (``announce`` first)."""
    import uvicorn

    check_port_free(host, port)
    if announce:
        render.ok(announce)
    # Workers are separate processes sharing nothing but the platform database, which is
    # where sessions' users, tokens, throttling and jobs live: any worker can answer any request.
    # uvicorn's own proxy-header handling (which believes 127.0.0.1 by default) stays off: the app
    # believes X-Forwarded-* only from portal.forwarded_allow_ips (storekeeper.portal.limits).
    uvicorn.run(
        APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level, proxy_headers=False
    )


def start(host: HostOpt = None, port: PortOpt = None, workers: WorkersOpt = 1, log_level: LogLevelOpt = "info") -> None:
    """Serve the portal: web admin, REST API at /api/v1, docs at /docs, health at /healthz."""
    from storekeeper.config import load_config
    from storekeeper.platform import open_platform

    config = load_config()
    open_platform(config).close()  # fail here, once, with the fix, rather than in every worker
    host, port = host or config.portal_host, port or config.portal_port
    serve(
        host,
        port,
        workers,
        log_level,
        announce=f"Serving the portal on http://{host}:{port} ({workers} worker(s)); API docs at /docs",
    )
