"""``ruvon-workers server``: the REST API and the dashboard."""

from __future__ import annotations

import logging

import click

from ..errors import RuvonError
from .output import EXIT_INVALID, fail


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def server(host: str, port: int, log_level: str) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /docs) and the dashboard (/ui).

    Reads DATABASE_URL, CELERY_BROKER_URL and RUVON_REGISTRY as a worker does; tokens
    from RUVON_API_TOKEN (admin) and RUVON_API_TOKENS_FILE (`token role` lines)."""
    import uvicorn

    from ..server import create_app

    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    try:
        app = create_app()
    except RuvonError as exc:
        fail(str(exc), EXIT_INVALID)
    click.echo(f"Ruvon Workers server on http://{host}:{port}/ (API /api/v1, docs /docs, "
               "dashboard /ui/)", err=True)
    # uvicorn's own access log is off: the server logs each request as one JSON line.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
