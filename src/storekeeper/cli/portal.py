"""``storekeeper start``: serve the portal (web admin and REST API) with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli import render

#: The app factory uvicorn imports in each worker process.
APP_FACTORY = "storekeeper.portal.app:create_app"


def start(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on \\[default: portal.host, 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on \\[default: portal.port, 8000].", min=1, max=65535)] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes (each builds its own app).", min=1)] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the portal: web admin, REST API at /api/v1, docs at /docs, health at /healthz."""
    import uvicorn

    from storekeeper.config import load_config
    from storekeeper.platform import open_platform

    config = load_config()
    open_platform(config).close()  # fail here, once, with the fix, rather than in every worker
    host, port = host or config.portal_host, port or config.portal_port
    render.ok(f"Serving the portal on http://{host}:{port} ({workers} worker(s)); API docs at /docs")
    # Workers are separate processes sharing nothing but the platform database, which is
    # where sessions' users, tokens, throttling and jobs live: any worker can answer any request.
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                proxy_headers=True)
