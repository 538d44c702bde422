"""``openzoo serve``: the API server (Ollama, OpenAI and openzoo's own) under uvicorn.

With ``--replicas N`` or ``--config serve.yaml`` the same app hands inference to a Ray Serve
deployment of engine replicas (``openzoo.scale``, imported only then); see docs/scale-out.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from openzoo import config as configuration
from openzoo.api.security import is_loopback
from openzoo.cli.common import load_config
from openzoo.cli.output import render_progress
from openzoo.config import Config
from openzoo.errors import Forbidden
from openzoo.scale.spec import load_spec

if TYPE_CHECKING:
    from openzoo.services import Services

ENV_HELP = "\n\n".join(f"\b\nOPENZOO_{s.name} (default {s.default or 'empty'})\n  {s.description}"
                       for s in configuration.SETTINGS)


@click.command(epilog="Environment variables:\n\n" + ENV_HELP)
@click.option("--no-default-model", is_flag=True, help="Do not import the embedded default model on first start.")
@click.option("--replicas", type=click.IntRange(min=1),
              help="Run inference on N Ray Serve replicas behind the same routes (needs openzoo[scale]).")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="A serve.yaml describing the replicas (docs/scale-out.md); --replicas overrides its count.")
def serve(no_default_model: bool, replicas: int | None, config_path: Path | None) -> None:
    """Start the openzoo server (Ollama-compatible API on OPENZOO_HOST)."""
    cfg = load_config()
    if not is_loopback(cfg.host) and not cfg.api_key:
        raise Forbidden(f"refusing to serve on {cfg.host}, a non-loopback address, without an API key",
                        hint="set OPENZOO_API_KEY, or bind 127.0.0.1")
    scale = load_spec(config_path, replicas)
    logging.basicConfig(level=logging.DEBUG if cfg.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not cfg.debug:  # httpx logs every request at INFO, and the periodic monitor makes several a round
        logging.getLogger("httpx").setLevel(logging.WARNING)
    from openzoo.services import Services

    if scale is None:
        _run(Services(cfg), cfg, no_default_model, "")
        return
    from openzoo.scale.cluster import replica_pool

    with replica_pool(cfg, scale) as pool:
        services = Services(cfg, inference_factory=pool.inference)
        services.inference  # noqa: B018 - built now (no engine here), so /zoo/replicas reports from the start
        _run(services, cfg, no_default_model, f" with {scale.replicas} Ray Serve replica(s)")


def _run(services: Services, cfg: Config, no_default_model: bool, detail: str) -> None:
    import uvicorn

    from openzoo.app import create_app

    if not no_default_model:
        render_progress(services.ensure_default_model())
    app = create_app(services)
    click.echo(f"openzoo serving on {cfg.base_url}{detail} (home {cfg.home}, "
               f"catalog {services.store.catalog.location})", err=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info" if cfg.debug else "warning",
                timeout_graceful_shutdown=5)
