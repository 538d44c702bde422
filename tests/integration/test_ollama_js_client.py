"""The official ``ollama`` npm package, run by Node, against a live openzoo server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from openzoo.models import DEFAULT_MODEL

JS_DIR = Path(__file__).parent / "js"


def test_ollama_js_client(server) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("node") is None:
        pytest.fail("node is required (the Makefile installs the npm package; Node comes with the machine)")
    if not (JS_DIR / "node_modules" / "ollama").is_dir():
        pytest.fail("run 'make test' (it installs tests/integration/js/node_modules)")
    result = subprocess.run(["node", "client.mjs", server.url, DEFAULT_MODEL], cwd=JS_DIR, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["generate"]["done"] is True
    assert seen["generate"]["eval_count"] == 8
    assert seen["generate"]["done_reason"] == "length"
    assert seen["chat"]["parts"] >= 1
    assert seen["chat"]["final"]["done"] is True
    assert seen["chat"]["streamed"] == seen["chat"]["whole"]
    assert DEFAULT_MODEL in seen["list"]
    assert seen["show"]["family"] == "gemma3"
    assert seen["show"]["model_info_arch"] == "gemma3"
    assert "Gemma Terms of Use" in seen["show"]["license"]
    assert seen["missing"]["status"] == 404
