"""Plain ``openzoo serve`` never imports Ray: only ``--replicas``/``--config`` reach ``openzoo.scale``'s Ray parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from openzoo.cli.main import cli

PLAIN_SERVER = """
import sys
from openzoo import config
from openzoo.app import create_app
from openzoo.cli import main  # adds every command, as `openzoo` does
from openzoo.scale.spec import load_spec
from openzoo.services import Services

assert load_spec(None, None) is None
services = Services(config.load({"OPENZOO_HOME": sys.argv[1]}))
create_app(services)
services.inference  # the local engine's seam, built as the first request would
services.close()
loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
print(loaded)
"""


def test_plain_server_does_not_import_ray(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PLAIN_SERVER, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_help_documents_replicas() -> None:
    text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert "--replicas" in text and "--config" in text and "serve.yaml" in text


def test_a_bad_serve_yaml_fails_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text("replicas: 0\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(bad)], env={"OPENZOO_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "replicas must be at least 1" in result.output
