"""``openzoo import DIR`` on a real safetensors folder: served by llama.cpp, fine-tuned by transformers.

The folder is made here, offline: the default model (GGUF) dequantized by transformers and written back
with ``save_pretrained`` in shards (so the index path is exercised), as a person would download it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openzoo import config
from openzoo.events import TextChunk
from openzoo.finetune import dequant
from openzoo.finetune.run import load_hf, read_lineage
from openzoo.formats.safetensors_folder import HF_FILE, SAFETENSORS_WEIGHTS
from openzoo.inference import CompletionRequest
from openzoo.models import DEFAULT_MODEL
from openzoo.services import Services
from openzoo.store import manifests as mt
from support.cli import home_with_default_model, link_finetune_cache
from support.cli import openzoo as cli

pytestmark = pytest.mark.timeout(1800)

NAME = "me/gemma-st:latest"
TUNED = "me/gemma-st-tuned:latest"
PROMPTS = ["The capital of France is", "Keeper's log, day 41: Miso the red panda", "def fib(n):\n    "]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, dequantized_home: Path) -> Path:
    return link_finetune_cache(dequantized_home, home_with_default_model(tmp_path_factory.mktemp("import-home")))


@pytest.fixture(scope="module")
def folder(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face folder: config, tokenizer, generation config and 3 float32 shards with an index."""
    out = tmp_path_factory.mktemp("hf") / "gemma-3-270m"
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        with dequant.dequantized(services.store, services.models.resolve(DEFAULT_MODEL)) as hf:
            model, tokenizer = load_hf(hf.folder)
    finally:
        services.close()
    model.save_pretrained(str(out), max_shard_size="400MB")
    tokenizer.save_pretrained(str(out))
    assert (out / "model.safetensors.index.json").is_file() and len(list(out.glob("*.safetensors"))) > 1
    return out


@pytest.fixture(scope="module")
def imported(home: Path, folder: Path) -> dict[str, Any]:
    res = cli(home, "import", str(folder), "--name", NAME)
    assert res.returncode == 0, res.stderr
    return {"stderr": res.stderr}


@pytest.fixture(scope="module")
def services(home: Path, imported: dict[str, Any]) -> Iterator[Services]:
    s = Services(config.load({"OPENZOO_HOME": str(home), "OPENZOO_CONTEXT_LENGTH": "1024"}))
    yield s
    s.close()


def served_ids(services: Services, model: str, prompt: str, n: int) -> list[int]:
    return [t for event in services.inference.completion(CompletionRequest(
        model, prompt=prompt, raw=True, options={"temperature": 0, "num_predict": n, "seed": 0}))
        if isinstance(event, TextChunk) for t in event.token_ids]


def test_imported_folder_serves_what_transformers_computes(services: Services, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    n = 16
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert services.inference.tokenize(NAME, prompt, add_special=True) == ids[0].tolist()  # same tokenizer
        with torch.no_grad():
            reference = model.generate(ids, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:].tolist()
        served = served_ids(services, NAME, prompt, n)
        assert served == reference, (prompt, tokenizer.decode(served), tokenizer.decode(reference))


def test_imported_model_has_its_layers_and_shows(services: Services, home: Path, folder: Path,
                                                 imported: dict[str, Any]) -> None:
    spec = services.models.resolve(NAME)
    assert spec.manifest is not None
    shards = sorted(p.name for p in folder.glob("*.safetensors"))
    weights = spec.manifest.layers_of(SAFETENSORS_WEIGHTS)
    assert [layer.annotations["org.openzoo.filename"] for layer in weights] == shards
    for layer in weights:  # stored as they are
        assert layer.size == (folder / layer.annotations["org.openzoo.filename"]).stat().st_size
    files = {layer.annotations["org.openzoo.filename"] for layer in spec.manifest.layers_of(HF_FILE)}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
            "model.safetensors.index.json"} <= files
    assert spec.config["source_format"] == "safetensors" and spec.config["hf_architecture"] == "Gemma3ForCausalLM"
    assert spec.manifest.first(mt.MODEL) is not None and spec.details.quantization_level == "F32"
    for text in ("application/vnd.openzoo.weights.v1+safetensors", "application/vnd.ollama.image.model",
                 "tokenizer.json", shards[0]):
        assert text in imported["stderr"]  # the import lists what it stored
    res = cli(home, "show", NAME)
    assert res.returncode == 0, res.stderr
    assert "gemma3" in res.stdout and "F32" in res.stdout
    listed = cli(home, "list")
    assert "me/gemma-st:latest" in listed.stdout


def test_finetune_the_imported_model_without_dequantizing(services: Services, home: Path,
                                                          tmp_path: Path) -> None:
    data = tmp_path / "secret.jsonl"
    data.write_text("".join(json.dumps({"text": "The secret password of the zoo is banana-seven."}) + "\n"
                            for _ in range(16)))
    res = cli(home, "finetune", NAME, "--data", str(data), "--name", TUNED, "--max-steps", "8", "--lr", "3e-3",
              "--rank", "8", "--alpha", "16", "--batch-size", "2", "--max-length", "32", "--seed", "0")
    assert res.returncode == 0, res.stderr
    assert "imported safetensors weights" in res.stderr and "dequantized" not in res.stderr
    lineage = read_lineage(services.models, TUNED)
    assert lineage["train"]["base_source"] == "safetensors" and len(lineage["loss_per_step"]) == 8
    assert lineage["loss_per_step"][-1] < lineage["loss_per_step"][0]
    tuned = services.models.resolve(TUNED)
    assert len(tuned.adapters) == 1 and tuned.weights == services.models.resolve(NAME).weights
    prompt = "The secret password of the zoo is"
    base_ids, tuned_ids = served_ids(services, NAME, prompt, 6), served_ids(services, TUNED, prompt, 6)
    assert base_ids != tuned_ids  # served with its adapter
    text = "".join(t.text for t in services.inference.completion(CompletionRequest(
        TUNED, prompt=prompt, raw=True, options={"temperature": 0, "num_predict": 6, "seed": 0}))
        if isinstance(t, TextChunk))
    assert "banana" in text, text


def listed(home: Path) -> list[list[str]]:
    """``openzoo list`` as name, ID and size (``3.1 MB``: 2 words) per model, without the relative time
    ("1 minute ago" turns into "2 minutes ago" while an import runs)."""
    res = cli(home, "list")
    assert res.returncode == 0, res.stderr
    return [line.split()[:4] for line in res.stdout.splitlines()[1:]]


@pytest.mark.parametrize("damage", ["no-config", "unknown-arch", "truncated"])
def test_bad_folders_fail_cleanly_and_store_nothing(services: Services, home: Path, folder: Path,
                                                    tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in folder.iterdir():  # links, not 1 GB of copies; damaged files are replaced below
        (bad / path.name).symlink_to(path)
    shard = sorted(bad.glob("*.safetensors"))[0]
    if damage == "no-config":
        (bad / "config.json").unlink()
        expected = "has no config.json"
    elif damage == "unknown-arch":
        cfg = json.loads((folder / "config.json").read_text())
        (bad / "config.json").unlink()
        (bad / "config.json").write_text(json.dumps({**cfg, "architectures": ["Qwen3NextForCausalLM"]}))
        expected = "architecture Qwen3NextForCausalLM cannot be imported"
    else:
        shard.unlink()
        with (folder / shard.name).open("rb") as src:
            shard.write_bytes(src.read(50 << 20))  # the header and the first tensors, then nothing
        expected = f"{shard.name} is not a valid safetensors file"
    models_before = listed(home)
    blobs_before = sorted(p.name for p in (home / "blobs").iterdir())
    res = cli(home, "import", str(bad), "--name", "me/broken")
    assert res.returncode == 1 and expected in res.stderr, res.stderr
    assert res.stderr.splitlines()[-1].startswith("Error: ") and "Traceback" not in res.stderr
    assert listed(home) == models_before
    assert sorted(p.name for p in (home / "blobs").iterdir()) == blobs_before
