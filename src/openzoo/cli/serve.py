"""``openzoo serve``: the API server (Ollama, OpenAI and openzoo's own) under uvicorn."""

from __future__ import annotations

import logging

import click

from openzoo import config as configuration
from openzoo.api.security import is_loopback
from openzoo.cli.main import cli, load_config
from openzoo.cli.output import render_progress
from openzoo.errors import Forbidden

ENV_HELP = "\n\n".join(f"\b\nOPENZOO_{s.name} (default {s.default or 'empty'})\n  {s.description}"
                       for s in configuration.SETTINGS)


@cli.command(epilog="Environment variables:\n\n" + ENV_HELP)
@click.option("--no-default-model", is_flag=True, help="Do not import the embedded default model on first start.")
def serve(no_default_model: bool) -> None:
    """Start the openzoo server (Ollama-compatible API on OPENZOO_HOST)."""
    import uvicorn

    from openzoo.api.app import create_app
    from openzoo.services import Services

    cfg = load_config()
    if not is_loopback(cfg.host) and not cfg.api_key:
        raise Forbidden(f"refusing to serve on {cfg.host}, a non-loopback address, without an API key",
                        hint="set OPENZOO_API_KEY, or bind 127.0.0.1")
    logging.basicConfig(level=logging.DEBUG if cfg.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not cfg.debug:  # httpx logs every request at INFO, and the periodic monitor makes several a round
        logging.getLogger("httpx").setLevel(logging.WARNING)
    services = Services(cfg)
    if not no_default_model:
        render_progress(services.ensure_default_model())
    app = create_app(services)
    click.echo(f"openzoo serving on {cfg.base_url} (home {cfg.home})", err=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info" if cfg.debug else "warning",
                timeout_graceful_shutdown=5)
