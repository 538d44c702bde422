"""Fine-tuning end to end on the real default model: CLI → peft → llama.cpp adapter → served model.

One small fine-tune (bundled keeper's-log data, a dozen steps) is shared by the module; the
other tests read its result, so the whole module costs one training run plus a short resumed one.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from openzoo import config
from openzoo.errors import InvalidData, InvalidModelFile, InvalidRequest, ModelNotFound
from openzoo.events import TextChunk
from openzoo.finetune import dequant
from openzoo.finetune.data import bundled
from openzoo.finetune.export import gguf_tensor_name
from openzoo.finetune.federated import FederatedRequest, finetune_federated
from openzoo.finetune.lora import LoraSettings
from openzoo.finetune.run import FinetuneRequest, finetune, read_lineage, run_dir
from openzoo.inference import CompletionRequest
from openzoo.models import DEFAULT_MODEL, CreateSpec
from openzoo.services import Services
from openzoo.store import manifests as mt
from support.cli import home_with_default_model, link_finetune_cache
from support.cli import openzoo as cli
from support.gguf_files import write_gguf

# The base dequantized once per session (the ``dequantized_home`` fixture: about a minute on an idle 2-core
# machine, several when it is shared), a 12-step run and its scoring happen in the first test's setup; the
# federated test spawns 3 trainers.
pytestmark = pytest.mark.timeout(1800)

NEW = "me/zoo-keeper:latest"
STEPS = 12  # the held-out loss still drops by more than 3 (5.56 -> 2.16; 24 steps: 1.44)


@pytest.fixture(scope="module")
def ft_home(tmp_path_factory: pytest.TempPathFactory, dequantized_home: Path) -> Path:
    return link_finetune_cache(dequantized_home, home_with_default_model(tmp_path_factory.mktemp("ft-home")))


@pytest.fixture(scope="module")
def tuned(ft_home: Path) -> dict[str, Any]:
    """``openzoo finetune`` through the CLI, as a person runs it; returns the timing and the output."""
    started = time.monotonic()
    res = cli(ft_home, "finetune", DEFAULT_MODEL, "--data", str(bundled("zoo_log.jsonl")), "--name", NEW,
              "--eval", str(bundled("zoo_log_eval.jsonl")), "--max-steps", str(STEPS), "--lr", "2e-3",
              "--batch-size", "4", "--seed", "1", "--data-license", "CC-BY-4.0")
    assert res.returncode == 0, res.stderr
    return {"seconds": time.monotonic() - started, "stderr": res.stderr}


@pytest.fixture(scope="module")
def services(ft_home: Path, tuned: dict[str, Any]) -> Iterator[Services]:
    s = Services(config.load({"OPENZOO_HOME": str(ft_home), "OPENZOO_CONTEXT_LENGTH": "1024"}))
    yield s
    s.close()


def test_finetune_lowers_heldout_loss_and_records_lineage(services: Services, tuned: dict[str, Any]) -> None:
    assert f"step {STEPS}/{STEPS}" in tuned["stderr"] and "tok/s" in tuned["stderr"]
    assert tuned["seconds"] < 600
    lineage = read_lineage(services.models, NEW)
    ev = lineage["evaluation"]
    print(f"\nheld-out loss (openzoo scoring): base {ev['before']['loss']:.3f} (ppl {ev['before']['perplexity']:.1f})"
          f" -> fine-tuned {ev['after']['loss']:.3f} (ppl {ev['after']['perplexity']:.1f}); {tuned['seconds']:.0f}s")
    assert ev["after"]["loss"] < ev["before"]["loss"] - 0.3  # clearly lower (perplexity down by a quarter or more)
    assert len(lineage["loss_per_step"]) == STEPS
    assert lineage["seed"] == 1 and lineage["hyperparameters"]["rank"] == 16
    assert lineage["data"][0]["license"] == "CC-BY-4.0" and lineage["data"][0]["digest"].startswith("sha256:")
    assert {"torch", "transformers", "peft", "llama-cpp-python"} <= set(lineage["libraries"])
    base = services.models.resolve(DEFAULT_MODEL)
    assert lineage["base"]["manifest_digest"] == base.digest


def test_new_model_shares_the_base_blob_and_states_its_license(services: Services) -> None:
    base = services.models.resolve(DEFAULT_MODEL)
    spec = services.models.resolve(NEW)
    assert spec.weights == base.weights  # shared, not copied
    assert spec.manifest is not None and len(spec.adapters) == 1
    assert spec.licenses == base.licenses and "Gemma" in spec.licenses[0]
    lineage = read_lineage(services.models, NEW)
    assert spec.manifest.first(mt.ADAPTER).digest == lineage["adapter"]["digest"]  # type: ignore[union-attr]
    card_layer = spec.manifest.first(mt.CARD)
    assert card_layer is not None
    card = services.store.blobs.read(card_layer.digest).decode()
    assert "base_model:" in card and "zoo_log.jsonl" in card and "## Training procedure" in card
    assert "Gemma" in card  # the restrictive base license is inherited and stated


def test_the_store_grows_by_the_adapter_and_the_cache_is_listed_apart(services: Services, ft_home: Path) -> None:
    """Issue 18: the dequantized base (about 1.1 GB) is a cache outside the store, never a model's size."""
    base = services.models.resolve(DEFAULT_MODEL)
    assert base.manifest is not None
    base_blobs = {base.manifest.config.digest, *(layer.digest for layer in base.manifest.layers)}
    others = sum(p.stat().st_size for p in (ft_home / "blobs").iterdir()
                 if p.name.startswith("sha256-") and "sha256:" + p.name[7:] not in base_blobs)
    adapter = services.models.resolve(NEW).manifest.first(mt.ADAPTER)  # type: ignore[union-attr]
    assert adapter is not None
    # the adapter, its manifests, lineage, card and the training data as a dataset: a few MB, not a base
    assert others <= adapter.size + (4 << 20), others
    cache = dequant.DequantCache.from_config(services.config)
    [entry] = cache.entries()
    assert entry.gguf_digest == dequant.gguf_digest(base) and entry.size > base.size  # float32 > Q4_K_M
    listed = cli(ft_home, "list", "--cache")
    assert listed.returncode == 0 and base.digest[7:19] not in listed.stdout
    assert entry.gguf_digest[7:19] in listed.stdout and DEFAULT_MODEL in listed.stdout
    assert "OPENZOO_FINETUNE_CACHE_BYTES" in listed.stderr
    assert "me/zoo-keeper" in cli(ft_home, "list").stdout


def greedy_llama(services: Services, model: str, prompt: str, n: int) -> str:
    return "".join(t.text for t in served_chunks(services, model, prompt, n))


def served_chunks(services: Services, model: str, prompt: str, n: int) -> list[TextChunk]:
    chunks = []
    for event in services.inference.completion(CompletionRequest(
            model, prompt=prompt, raw=True, options={"temperature": 0, "num_predict": n, "seed": 0, "stop": [],
                                                         "repeat_penalty": 1.0})):
        if isinstance(event, TextChunk):
            chunks.append(event)
    return chunks


def merged_pytorch(services: Services) -> tuple[Any, Any]:
    """The base dequantized by transformers + the LoRA tensors read back from the stored adapter GGUF, merged."""
    import gguf
    import torch
    from peft import LoraConfig, get_peft_model

    from openzoo.finetune.run import load_hf

    spec = services.models.resolve(NEW)
    reader = gguf.GGUFReader(str(spec.adapters[0]))
    arrays = {t.name: np.array(t.data) for t in reader.tensors}
    with dequant.dequantized(services.store, services.models.resolve(DEFAULT_MODEL)) as hf:
        assert hf.from_cache
        model, tokenizer = load_hf(hf.folder)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    state = {k: torch.from_numpy(arrays[gguf_tensor_name(k)].copy()) for k in peft_model.state_dict()
             if "lora_" in k}
    assert len(state) == len(arrays)
    peft_model.load_state_dict(state, strict=False)
    return peft_model.merge_and_unload().eval(), tokenizer


def test_llama_cpp_with_adapter_equals_merged_pytorch(services: Services) -> None:
    """Greedy tokens through llama.cpp (Q4_K_M base + the LoRA GGUF) = greedy tokens of the merged PyTorch model.

    llama.cpp multiplies with 8-bit quantized activations, so two candidates whose logits differ by
    less than a few hundredths can swap; tokens are compared up to the first step where PyTorch's own
    top-2 logit gap is under ``margin`` (a near tie, not a conversion question), and the held-out loss of
    both on the same tokens must agree closely.
    """
    import torch

    from openzoo.audit.engine_scorer import EngineScorer

    margin = 0.3
    model, tokenizer = merged_pytorch(services)
    prompts = ["Keeper's log, day 41: Miso the red panda", "Health check, day 7: Granite the",
               "Visitor note, day 230: children saw", "Day 12 at the Openzoo: Ripple the otter"]
    n, compared = 10, 0
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True)
        reference = out.sequences[0, ids.shape[1]:].tolist()
        gaps = [float(torch.topk(score[0], 2).values[0] - torch.topk(score[0], 2).values[1]) for score in out.scores]
        sure = next((i for i, gap in enumerate(gaps) if gap < margin), len(gaps))
        served = [t for chunk in served_chunks(services, NEW, prompt, n) for t in chunk.token_ids]
        k = min(sure, len(served))
        assert served[:k] == reference[:k], (prompt, tokenizer.decode(served), tokenizer.decode(reference))
        compared += k
    assert compared >= n  # near ties are rare: most steps are compared
    # the same numbers, not just the same argmax: per-token loss of held-out text, PyTorch vs llama.cpp
    text = "\n".join(json.loads(line)["text"] for line in bundled("zoo_log_eval.jsonl").read_text().splitlines()[:8])
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        torch_loss = float(model(input_ids=ids, labels=ids).loss)
    scorer = EngineScorer.open(services.inference, NEW)  # the one scorer, as heldout_loss uses it
    assert [scorer.facts.bos, *scorer.tokenize(text)] == ids[0].tolist()
    nll, count = -scorer.rolling_loglikelihood([text])[0], ids.shape[1] - 1
    assert abs(nll / count - torch_loss) < 0.02 * torch_loss, (nll / count, torch_loss)
    base_out = greedy_llama(services, DEFAULT_MODEL, prompts[0], n)
    assert base_out != greedy_llama(services, NEW, prompts[0], n)  # the adapter is really applied


def test_show_lineage(ft_home: Path, tuned: dict[str, Any]) -> None:
    res = cli(ft_home, "show", NEW, "--lineage")
    assert res.returncode == 0, res.stderr
    assert "held-out loss before/after" in res.stdout and "CC-BY-4.0" in res.stdout
    full = json.loads(cli(ft_home, "show", NEW, "--lineage", "-v").stdout)
    assert full["schema"] == "openzoo.lineage/v1"
    # the data file given by path was stored as a dataset, and the lineage cites it by name and digests
    data = full["data"][0]
    assert data["dataset"].startswith("data/zoo_log:") and data["data_digest"] == data["digest"]
    assert full["evaluation"]["dataset"].startswith("data/zoo_log_eval:")
    assert f"dataset   {data['dataset']} (300 rows, CC-BY-4.0, not sealed)" in res.stdout
    assert "base      gemma3:270m (stored as gemma3:270m)" in res.stdout
    res = cli(ft_home, "show", DEFAULT_MODEL, "--lineage")
    assert res.returncode == 1 and "no lineage" in res.stderr


def test_finetune_on_a_sealed_dataset_walks_the_lineage(ft_home: Path, tmp_path: Path) -> None:
    """A CSV dataset, imported and sealed, then fine-tuned on by name (2 tiny steps): the lineage cites the dataset
    by name, manifest digest and data digest, and ``show --lineage`` walks model -> adapter -> dataset -> base."""
    texts = [json.loads(line)["text"] for line in bundled("zoo_log.jsonl").read_text().splitlines()[:16]]
    rows = tmp_path / "keeper.csv"
    with rows.open("w", newline="") as f:
        csv.writer(f).writerows([["text"], *([t] for t in texts)])
    name, tuned_name = "me/keeper-csv:v1", "me/from-dataset:latest"
    steps = [("dataset", "import", str(rows), "--name", name, "--license", "CC-BY-4.0"),
             ("keys", "generate", "ft-alice"), ("keys", "generate", "ft-bob"),
             ("certify", "policy", "--reviewers", "ft-alice,ft-bob", "--threshold", "2"),
             ("certify", "request", name), ("certify", "approve", name, "--key", "ft-alice"),
             ("certify", "approve", name, "--key", "ft-bob")]
    for args in steps:
        res = cli(ft_home, *args)
        assert res.returncode == 0, (args, res.stderr)
    tiny = ("--max-steps", "2", "--rank", "4", "--alpha", "8", "--batch-size", "2", "--max-length", "40")
    res = cli(ft_home, "finetune", DEFAULT_MODEL, "--data", name, "--name", tuned_name, "--data-license", "MIT", *tiny)
    assert res.returncode == 1 and "is licensed CC-BY-4.0, not MIT" in res.stderr
    res = cli(ft_home, "finetune", DEFAULT_MODEL, "--data", name, "--name", tuned_name, *tiny)
    assert res.returncode == 0, res.stderr
    dataset = json.loads(cli(ft_home, "dataset", "show", name, "--json").stdout)
    record = json.loads(cli(ft_home, "show", tuned_name, "--lineage", "-v").stdout)
    assert record["data"] == [{"file": "keeper.csv", "digest": dataset["data_digest"], "records": 16, "kind": "text",
                               "dataset": name, "manifest_digest": dataset["digest"],
                               "data_digest": dataset["data_digest"], "license": "CC-BY-4.0"}]
    walk = cli(ft_home, "show", tuned_name, "--lineage").stdout
    lines = [line.strip() for line in walk.splitlines()]
    assert lines[0] == f"Lineage of {tuned_name}" and lines[2].startswith("adapter   LoRA (gguf-lora)")
    assert lines[3].startswith(f"dataset   {name} (16 rows, CC-BY-4.0, sealed)")
    assert dataset["digest"][:19] in lines[3] and dataset["data_digest"][:19] in lines[3]
    assert lines[4].startswith("base      gemma3:270m (stored as gemma3:270m)")
    assert cli(ft_home, "rm", tuned_name).returncode == 0


def small(**changes: Any) -> LoraSettings:
    base = {"rank": 4, "alpha": 8.0, "max_steps": 3, "batch_size": 2, "max_length": 40, "lr": 1e-3,
            "checkpoint_every": 1}
    base.update(changes)
    return LoraSettings(**base)


def test_bad_input_is_refused_and_nothing_stored(services: Services, ft_home: Path, tmp_path: Path) -> None:
    before = [e.display for e in services.store.catalog.entries()]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "fine too"}\n{"text": oops}\n')
    res = cli(ft_home, "finetune", DEFAULT_MODEL, "--data", str(bad), "--name", "me/bad")
    assert res.returncode == 1 and "bad.jsonl:3:" in res.stderr and "not valid JSON" in res.stderr
    data = bundled("zoo_log.jsonl")
    cases: list[tuple[FinetuneRequest, type[Exception], str]] = [
        (FinetuneRequest("nobody/nothing", data, "me/x"), ModelNotFound, "nobody/nothing"),
        (FinetuneRequest(DEFAULT_MODEL, data, "me/x", settings=small(rank=0)), InvalidRequest, "rank"),
        (FinetuneRequest(DEFAULT_MODEL, bad, "me/x"), InvalidData, "bad.jsonl:3"),
    ]
    for req, exc, text in cases:
        with pytest.raises(exc, match=text):
            list(finetune(services, req))
    res = cli(ft_home, "finetune", DEFAULT_MODEL, "--data", str(data), "--name", "me/x", "--rank", "0")
    assert res.returncode == 1 and "rank must be at least 1" in res.stderr
    # an adapter made for another architecture: refused at create, before anything is tagged
    other = write_gguf(tmp_path / "llama-adapter.gguf", arch="llama", tensors={
        "blk.0.attn_q.weight.lora_a": np.zeros((4, 640), np.float32),
        "blk.0.attn_q.weight.lora_b": np.zeros((1024, 4), np.float32)})
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    w.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 640), np.float32))
    w.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((1024, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for path in (tmp_path / "a.gguf", other):
        blob = services.store.blobs.put_file(path)
        with pytest.raises(InvalidModelFile):
            list(services.models.create(CreateSpec("me/mismatch", base=DEFAULT_MODEL,
                                                   adapters={path.name: blob.digest})))
    assert [e.display for e in services.store.catalog.entries()] == before
    assert not run_dir(services, "me/x").exists()


def test_interrupt_leaves_a_checkpoint_and_resume_finishes(services: Services, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"Tapir number {i} swims in the river bend."}) + "\n"
                            for i in range(8)))
    req = FinetuneRequest(DEFAULT_MODEL, data, "me/resumed", settings=small())
    steps = []

    def stop_after_two() -> bool:
        return len(steps) >= 2

    with pytest.raises(KeyboardInterrupt):
        for event in finetune(services, req, should_stop=stop_after_two):
            if event.status == "training":
                steps.append(event.detail["loss"])
    assert (run_dir(services, "me/resumed") / "checkpoint" / "checkpoint.json").is_file()
    with pytest.raises(ModelNotFound):
        services.models.resolve("me/resumed")
    events = list(finetune(services, FinetuneRequest(DEFAULT_MODEL, data, "me/resumed", settings=small(),
                                                     resume=True)))
    assert any(e.status == "resumed at step 2" for e in events)
    lineage = read_lineage(services.models, "me/resumed")
    assert len(lineage["loss_per_step"]) == 3 and lineage["loss_per_step"][:2] == pytest.approx(steps, abs=1e-4)
    assert lineage["train"]["base_from_cache"] is True
    assert not run_dir(services, "me/resumed").exists()
    services.models.delete("me/resumed")


def test_api_starts_a_job_and_streams_progress(services: Services) -> None:
    from openzoo.app import create_app

    app = create_app(services, close_on_shutdown=False)
    records = [{"text": f"Otter {i} splashed in the stream pools."} for i in range(4)]
    with TestClient(app, base_url="http://127.0.0.1:11434") as client:
        prompt = "Keeper's log, day 41: Miso the red panda"
        gen = client.post("/api/generate", json={"model": NEW, "prompt": prompt, "raw": True, "stream": False,
                                                 "options": {"temperature": 0, "num_predict": 10, "seed": 0,
                                                             "repeat_penalty": 1.0}})
        assert gen.status_code == 200 and gen.json()["response"] == greedy_llama(services, NEW, prompt, 10)
        bad = client.post("/zoo/finetunes", json={"base": DEFAULT_MODEL, "name": "me/api", "data": records,
                                                   "rank": 0})
        assert bad.status_code == 400 and "rank" in bad.text
        missing = client.post("/zoo/finetunes", json={"base": "nobody/nothing", "name": "me/api", "data": records})
        assert missing.status_code == 404
        res = client.post("/zoo/finetunes", json={"base": DEFAULT_MODEL, "name": "me/api", "data": records,
                                                  "max_steps": 1, "rank": 4, "batch_size": 2, "max_length": 24})
        assert res.status_code == 201, res.text
        job = res.json()["id"]
        lines = [json.loads(line) for line in
                 client.get(f"/zoo/finetunes/{job}", headers={"accept": "application/x-ndjson"}).iter_lines()]
        assert lines[-1] == {"status": "succeeded", "done": True}, lines[-3:]
        assert any(line.get("status") == "training" and "loss" in line for line in lines)
        state = client.get(f"/zoo/finetunes/{job}").json()
        assert state["status"] == "succeeded" and state["lineage"]["adapter"]["digest"].startswith("sha256:")
        assert client.get("/zoo/finetunes/nope").status_code == 404
    services.models.delete("me/api")


KINDS = ("Keeper's log", "Day ", "Health check")


def split_by_kind(source: Path, folder: Path, prefix: str) -> list[Path]:
    texts = [json.loads(line)["text"] for line in source.read_text().splitlines() if line.strip()]
    paths = []
    for i, kind in enumerate(KINDS):
        path = folder / f"{prefix}-{i}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts if t.startswith(kind)))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_three_data_owners_federated_lora(services: Services, tmp_path: Path) -> None:
    """A SuperLink and 3 SuperNodes on 127.0.0.1, each with a different shard (sentence form)."""
    work = tmp_path
    shards = split_by_kind(bundled("zoo_log.jsonl"), work, "train")
    evals = split_by_kind(bundled("zoo_log_eval.jsonl"), work, "eval")
    # 2 small local steps a round: each round costs mostly the 3 trainers' start, and the held-out loss of
    # every owner still drops by more than 1.8 (5.10 -> 3.24, 5.72 -> 3.18, 5.81 -> 3.11; 4 steps of batch 4
    # took twice as long for the same property)
    settings = LoraSettings(rank=8, alpha=16.0, lr=4e-3, batch_size=2, max_length=32, seed=3)
    events = list(finetune_federated(services, FederatedRequest(
        base=DEFAULT_MODEL, data=bundled("zoo_log.jsonl"), name="me/federated", settings=settings,
        eval_data=bundled("zoo_log_eval.jsonl"), rounds=2, local_steps=2, shard_files=tuple(shards),
        eval_shard_files=tuple(evals), data_license="CC-BY-4.0", timeout=900)))
    assert events[-1].status == "success"
    assert [e.completed for e in events if e.status == "federated round"] == [1, 2]
    lineage = read_lineage(services.models, "me/federated")
    fed = lineage["federated"]
    assert len(fed["rounds"]) == 2
    digests = {d["digest"] for d in lineage["data"]}
    for entry in fed["rounds"]:
        assert len(entry["nodes"]) == 3
        assert {n["data_digest"] for n in entry["nodes"]} == digests  # digests of the data, never the data
        assert entry["adapter_digest"].startswith("sha256:")
    before, after = fed["eval_shards_before"], fed["eval_shards_after"]
    print("\nfederated held-out loss per data owner:",
          [f"{b['loss']:.3f} -> {a['loss']:.3f}" for b, a in zip(before, after, strict=True)])
    for b, a in zip(before, after, strict=True):
        assert a["loss"] < b["loss"]
    assert services.models.resolve("me/federated").adapters


@pytest.mark.slow
def test_federated_with_differential_privacy(services: Services, tmp_path: Path) -> None:
    """2 data owners, 2 rounds, Flower's server-side fixed-clipping DP: clipped, noised, recorded."""
    shards = split_by_kind(bundled("zoo_log.jsonl"), tmp_path, "dp")[:2]
    settings = LoraSettings(rank=4, alpha=8.0, lr=2e-3, batch_size=2, max_length=32, seed=5)
    events = list(finetune_federated(services, FederatedRequest(
        base=DEFAULT_MODEL, data=bundled("zoo_log.jsonl"), name="me/federated-dp", settings=settings,
        rounds=2, local_steps=1, shard_files=tuple(shards), dp_noise=0.05, dp_clip=0.5, timeout=900)))
    assert events[-1].status == "success"
    fed = read_lineage(services.models, "me/federated-dp")["federated"]
    dp = fed["differential_privacy"]
    assert dp["noise_multiplier"] == 0.05 and dp["clipping_norm"] == 0.5
    assert dp["noise_stddev"] == pytest.approx(0.05 * 0.5 / 2)
    assert "DifferentialPrivacyServerSideFixedClipping" in dp["mechanism"]
    assert [entry["round"] for entry in fed["rounds"]] == [1, 2]
    for entry in fed["rounds"]:  # Flower's wrapper really ran: it clipped both updates and added noise
        assert entry["dp"]["clipping_norm"] == 0.5 and entry["dp"]["noise_multiplier"] == 0.05
        assert entry["dp"]["clipped_updates"] == 2
        assert entry["adapter_digest"] != entry["dp"]["averaged_adapter_digest"]
    assert services.models.resolve("me/federated-dp").adapters
    services.models.delete("me/federated-dp")
