"""Quantization as a zoo operation, with the real default model (Q4_K_M, requantized by llama.cpp).

One home cloned from the session's: ``q4`` (Q4_0) is made with the CLI before the server starts, ``q2``
(Q2_K) and an F16 dequantization through ``/api/create``. The held-out text is kept short (64 tokens) so
each create measures in seconds; the figures' reproducibility is checked by measuring again from the
inputs the lineage records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openzoo import config
from openzoo.finetune.lineage import read_lineage
from openzoo.quantize.measure import MeasureInputs, builtin_heldout, measure
from openzoo.services import Services
from support.cli import clone_home, openzoo
from support.server import Server, start_server, stop_server

TOKENS = 64


def _blobs(home: Path) -> set[str]:
    return {p.name for p in (home / "blobs").iterdir()}


def _create(api: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    with api.stream("POST", "/api/create", json=body, timeout=600) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


@pytest.fixture(scope="module")
def zoo(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = clone_home(model_home, tmp_path_factory.mktemp("quantize") / "home")
    modelfile = home.parent / "Modelfile"
    modelfile.write_text("FROM gemma3:270m\n")
    made = openzoo(home, "create", "q4", "-f", str(modelfile), "--quantize", "q4_0",
                   "--heldout-tokens", str(TOKENS))
    assert made.returncode == 0, made.stderr
    assert "quantizing gemma3:270m (Q4_K_M) to Q4_0" in made.stderr and "success" in made.stderr
    assert "KL divergence (mean)" in made.stdout and "top-1 agreement" in made.stdout
    srv = start_server(home, home.parent / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def api(zoo: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=zoo.url, timeout=600) as client:
        yield client


@pytest.fixture(scope="module")
def q2(api: httpx.Client) -> list[dict[str, Any]]:
    return _create(api, {"model": "q2", "from": "gemma3:270m", "quantize": "Q2_K", "heldout_tokens": TOKENS})


def test_api_create_quantize_streams_stages(q2: list[dict[str, Any]]) -> None:
    statuses = [event.get("status") for event in q2]
    assert "error" not in q2[-1] and statuses[-1] == "success"
    for stage in ("quantizing gemma3:270m (Q4_K_M) to Q2_K", "validating the quantized GGUF",
                  f"measuring Q2_K against gemma3:270m on {TOKENS} held-out tokens", "writing manifest"):
        assert stage in statuses
    bar = [e for e in q2 if e.get("status", "").startswith("quantizing") and e.get("total")]
    assert bar and bar[-1]["completed"] == bar[-1]["total"]


def test_bad_types_are_refused_and_nothing_is_stored(zoo: Server, api: httpx.Client, q2: object) -> None:
    before = _blobs(zoo.home)
    bad = api.post("/api/create", json={"model": "bad", "from": "gemma3:270m", "quantize": "q9_9"})
    assert bad.status_code == 400
    assert "unknown quantization type" in bad.json()["error"] and "Q4_K_M" in bad.json()["error"]
    needs = api.post("/api/create", json={"model": "bad", "from": "gemma3:270m", "quantize": "iq2_xxs"})
    assert needs.status_code == 400 and "importance matrix" in needs.json()["error"]
    extra = api.post("/api/create", json={"model": "bad", "from": "gemma3:270m", "quantize": "q8_0", "system": "x"})
    assert extra.status_code == 400 and "system" in extra.json()["error"]
    cli = openzoo(zoo.home, "create", "bad", "-f", str(zoo.home.parent / "Modelfile"), "--quantize", "Q3_X")
    assert cli.returncode != 0
    assert cli.stderr.strip().count("\n") == 0 and "valid types" in cli.stderr
    names = [m["name"] for m in api.get("/api/tags").json()["models"]]
    assert not any(n.startswith("bad") for n in names)
    same = api.post("/api/create", json={"model": "gemma3:270m", "from": "gemma3:270m", "quantize": "q8_0"})
    assert same.status_code == 400 and "replace" in same.json()["error"]
    assert _blobs(zoo.home) == before


@pytest.mark.parametrize("model", ["q4", "q2"])
def test_quantized_models_generate_greedily(api: httpx.Client, q2: object, model: str) -> None:
    body = {"model": model, "prompt": "The old lighthouse", "stream": False,
            "options": {"temperature": 0, "num_predict": 8, "seed": 1}}
    first = api.post("/api/generate", json=body).json()
    again = api.post("/api/generate", json=body).json()
    assert first["done"] and first["eval_count"] >= 1 and first["response"]
    assert first["response"] == again["response"]


def test_show_card_and_lineage_carry_the_cost(zoo: Server, api: httpx.Client, q2: object) -> None:
    shown = api.post("/api/show", json={"model": "q2"}).json()
    quality = shown["quantization"]["quality"]
    assert shown["details"]["quantization_level"] == "Q2_K"
    assert shown["quantization"]["source"] == "gemma3:270m" and shown["quantization"]["from_type"] == "Q4_K_M"
    assert 0 < quality["kl_mean"] < 5 and 0 < quality["top1_agreement"] <= 1
    assert quality["tokens_scored"] == TOKENS and 0 < shown["quantization"]["size_ratio"] < 1
    cli = openzoo(zoo.home, "show", "q4")
    assert cli.returncode == 0 and "Quantization (from gemma3:270m)" in cli.stdout
    assert "KL divergence (mean)" in cli.stdout and "top-1 agreement" in cli.stdout
    lineage = openzoo(zoo.home, "show", "q2", "--lineage").stdout
    assert "quantized Q4_K_M → Q2_K" in lineage and "from      gemma3:270m (stored as gemma3:270m)" in lineage
    assert "google/gemma-3-270m (upstream" in lineage
    card = openzoo(zoo.home, "card", "q2").stdout
    assert "base_model_relation: quantized" in card and "google/gemma-3-270m" in card
    assert f"| KL divergence from the source, mean (nats) | {quality['kl_mean']:.5f} |" in card
    assert f"| top-1 agreement with the source | {quality['top1_agreement'] * 100:.2f} % |" in card


def test_figures_are_reproducible_from_the_recorded_inputs(zoo: Server, q2: object) -> None:
    services = Services(config.load({"OPENZOO_HOME": str(zoo.home)}))
    try:
        record = read_lineage(services.models, "q2")
        recorded = record["quality"]
        source = services.models.resolve(record["base"]["name"])
        quantized = services.models.resolve("q2")
        heldout = builtin_heldout()
        assert (recorded["source"], recorded["digest"]) == (heldout.source, heldout.digest)
        assert source.digest == record["base"]["manifest_digest"]
        again = measure(source.weights, quantized.weights,
                        MeasureInputs(heldout, recorded["tokens"], recorded["context"]))
    finally:
        services.close()
    for key in ("kl_mean", "kl_max", "top1_agreement", "ppl_source", "ppl_quantized"):
        assert math.isclose(again[key], recorded[key], rel_tol=1e-9, abs_tol=1e-12), key
    assert again["tokens_scored"] == recorded["tokens_scored"]


def test_web_page_compares_quantizations(api: httpx.Client, q2: object) -> None:
    page = api.get("/ui/models/q4:latest")
    assert page.status_code == 200
    html = page.text
    assert "Quantizations of gemma3:270m" in html
    kl = api.post("/api/show", json={"model": "q2"}).json()["quantization"]["quality"]["kl_mean"]
    assert f"{kl:.5f}" in html and "q2:latest" in html and "Q4_0" in html


def test_f16_is_the_sources_dequantization(zoo: Server, api: httpx.Client) -> None:
    events = _create(api, {"model": "f16", "from": "gemma3:270m", "quantize": "f16", "heldout_tokens": 16})
    assert events[-1].get("status") == "success", events[-1]
    shown = api.post("/api/show", json={"model": "f16"}).json()
    assert shown["details"]["quantization_level"] == "F16"
    assert shown["quantization"]["size_ratio"] > 1.5
    assert shown["quantization"]["quality"]["kl_mean"] < 0.05  # F16 holds Q4_K values almost exactly
    assert api.request("DELETE", "/api/delete", json={"model": "f16"}).status_code == 200


def test_importance_matrix_covers_every_layer_weight(zoo: Server) -> None:
    from openzoo.formats.gguf import validate_gguf
    from openzoo.quantize.imatrix import compute

    services = Services(config.load({"OPENZOO_HOME": str(zoo.home)}))
    try:
        weights = services.models.resolve("gemma3:270m").weights
    finally:
        services.close()
    matrix = compute(weights, builtin_heldout(), tokens=48, context=64)
    tensors = {t.name: t.shape for t in validate_gguf(weights).tensors}
    expected = {name for name, shape in tensors.items() if name.startswith("blk.") and len(shape) == 2}
    assert set(matrix.values) == expected
    for name, values in matrix.values.items():
        assert values.shape == (tensors[name][0],) and bool((values >= 0).all()) and float(values.max()) > 0
    record = matrix.to_json()
    assert record["tokens"] == 48 and record["tensors"] == len(expected)
    assert record["matrix_digest"].startswith("sha256:") and record["digest"] == builtin_heldout().digest


def test_logits_rows_are_the_scoring_paths(zoo: Server) -> None:
    """``PromptScorer.logits`` reads the rows ``score`` takes its log-probabilities from (a cold read)."""
    import numpy as np

    from openzoo.quantize.measure import ScoringModel
    from openzoo.quantize.quality import log_softmax64

    services = Services(config.load({"OPENZOO_HOME": str(zoo.home)}))
    try:
        weights = services.models.resolve("gemma3:270m").weights
    finally:
        services.close()
    with ScoringModel(weights, n_ctx=128) as model:
        prompt = (model.bos, *model.tokenize("The keeper wrote the day's weather in the log before sunrise."))
        rows = log_softmax64(np.array(model.scorer.logits(prompt)))
        scored = model.scorer.score(prompt, 0)
    for i, item in enumerate(scored[1:]):
        assert item is not None and math.isclose(item.logprob, rows[i, prompt[i + 1]], abs_tol=1e-5)
