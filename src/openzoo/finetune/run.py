"""``openzoo finetune``: data → LoRA training → llama.cpp adapter → a new model with its lineage.

Order matters for "nothing stored on failure": everything that can be checked is checked before the
base is loaded (settings, names, base model, every data line); the new model is tagged only after the
adapter GGUF has been written and validated, and if scoring or writing the lineage fails afterwards the
half-made model is removed again. Ctrl-C during training leaves a checkpoint (``--resume``) and no model.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.errors import Conflict, InvalidRequest, NotFound
from openzoo.events import Progress
from openzoo.finetune import dequant
from openzoo.finetune.data import Dataset, load_jsonl
from openzoo.finetune.evaluate import EvalResult, heldout_loss
from openzoo.finetune.lineage import SCHEMA, card_from_lineage, library_versions
from openzoo.finetune.lora import LoraSettings, Trainer, tokenize
from openzoo.models import CreateSpec, Models, ModelSpec
from openzoo.services import Services
from openzoo.store import manifests as mt

__all__ = ["FinetuneRequest", "finetune", "load_data", "run_dir", "store_result"]

DEFAULT_DATA_LICENSE = None
SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class FinetuneRequest:
    base: str
    data: Path
    name: str
    settings: LoraSettings = field(default_factory=LoraSettings)
    eval_data: Path | None = None
    resume: bool = False
    data_license: str | None = None


def run_dir(services: Services, name: str) -> Path:
    """Where a run's checkpoints live until it finishes: ``$OPENZOO_HOME/finetune/runs/<name>``."""
    return Path(services.config.home) / "finetune" / "runs" / SAFE.sub("_", names.parse(name).key)


def load_data(models: Models, spec: ModelSpec, path: Path, license_id: str | None = None) -> Dataset:
    template = models.template_for(spec)
    return load_jsonl(path, lambda messages: template.render(messages, add_generation_prompt=False))


def _base_license(models: Models, spec: ModelSpec) -> str | None:
    layer = spec.manifest.first(mt.LICENSE) if spec.manifest else None
    return layer.annotations.get("org.openzoo.license.id") if layer else None


def prepare(services: Services, req: FinetuneRequest) -> tuple[ModelSpec, Dataset, Dataset | None]:
    """Every check that needs no training: settings, names, base, data (with line numbers)."""
    req.settings.check()
    names.parse(req.name)
    spec = services.models.resolve(req.base)
    data = load_data(services.models, spec, req.data)
    eval_data = load_data(services.models, spec, req.eval_data) if req.eval_data else None
    if names.parse(req.name).key == spec.name.key:
        raise Conflict("the fine-tuned model needs a new name, not the base's", hint="pass --name NEW")
    return spec, data, eval_data


def load_hf(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return model, tokenizer


def evaluate(services: Services, model: str, data: Dataset | None) -> EvalResult | None:
    return heldout_loss(services.inference, model, data.texts) if data is not None else None


def finetune(services: Services, req: FinetuneRequest,
             should_stop: Callable[[], bool] | None = None) -> Iterator[Progress]:
    """Run a whole fine-tune, yielding progress; the last event's ``detail`` holds the lineage."""
    started = time.time()
    spec, data, eval_data = prepare(services, req)
    yield Progress(f"validated {len(data.texts)} records from {data.path.name}")
    folder = run_dir(services, req.name)
    checkpoint = folder / "checkpoint"
    expected = {"base_digest": spec.digest, "data_digest": data.digest, "settings": req.settings.to_json()}
    if req.resume:
        if not (checkpoint / "checkpoint.json").is_file():
            raise NotFound(f"no checkpoint to resume for {req.name}", hint="start the run without --resume")
        meta = json.loads((checkpoint / "checkpoint.json").read_text())
        for key, value in expected.items():
            if meta.get(key) != value:
                raise InvalidRequest(f"the checkpoint was made with a different {key.replace('_', ' ')}",
                                     hint="resume with the same base, data and settings, or start afresh")
    before = None
    if eval_data is not None:
        yield Progress(f"scoring held-out data on {spec.name.display}")
        before = evaluate(services, req.base, eval_data)
    yield Progress(f"loading {spec.name.display} into PyTorch")
    with dequant.dequantized(services.store, spec) as hf:
        yield dequant.progress_for(hf)
        base_model, tokenizer = load_hf(hf.folder)
        trainer = Trainer(base_model, tokenizer, req.settings)
        trainable, total = trainer.trainable_parameters()
        yield Progress(f"LoRA: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)")
        if req.resume:
            trainer.load_checkpoint(checkpoint)
            yield Progress(f"resumed at step {trainer.step}")
        records = tokenize(tokenizer, data.texts, req.settings.max_length)
        folder.mkdir(parents=True, exist_ok=True)
        yield from trainer.train(records, checkpoint=checkpoint, checkpoint_extra=expected, should_stop=should_stop)
        result = trainer.last_result
        from openzoo.finetune.lora import lora_state

        lora = lora_state(trainer.model)
    yield Progress("writing the LoRA adapter as GGUF")
    lineage = yield from store_result(
        services, spec, req.name, lora, req.settings,
        data=[{**data.to_json(), "license": req.data_license}], eval_data=eval_data, before=before,
        losses=trainer.losses, started=started, train={"tokens": result.tokens,
                                                       "tokens_per_second": round(result.tokens_per_second, 1),
                                                       "first_step_seconds": result.first_step_seconds,
                                                       "base_load_seconds": round(hf.load_seconds, 2),
                                                       "base_from_cache": hf.from_cache,
                                                       "base_source": hf.source})
    shutil.rmtree(folder, ignore_errors=True)
    yield Progress("success", detail={"lineage": lineage})


def store_result(services: Services, spec: ModelSpec, name: str, lora: dict[str, Any], settings: LoraSettings, *,
                 data: list[dict[str, Any]], eval_data: Dataset | None, before: EvalResult | None,
                 losses: list[float], started: float, train: dict[str, Any],
                 federated: dict[str, Any] | None = None,
                 after_tagging: Callable[[], dict[str, Any]] | None = None
                 ) -> Generator[Progress, None, dict[str, Any]]:
    """Export ``lora``, tag ``name`` = base + adapter, score it, and add the lineage and card layers.

    A generator returning the lineage record. If anything fails after tagging, the model is removed.
    """
    from openzoo.finetune.export import qk_heads_for, write_lora_gguf

    models = services.models
    info = models.gguf_info(spec)
    with tempfile.TemporaryDirectory(prefix="openzoo-lora-") as tmp:
        path = Path(tmp) / "adapter.gguf"
        write_lora_gguf(path, lora, architecture=info.architecture, alpha=settings.alpha, name=f"{name} LoRA",
                        base_name=spec.name.display, qk_heads=qk_heads_for(info))
        blob = services.store.blobs.put_file(path)
    yield from models.create(CreateSpec(name=name, base=spec.name.display, adapters={"adapter.gguf": blob.digest}))
    try:
        after = None
        if eval_data is not None:
            yield Progress(f"scoring held-out data on {name}")
            after = evaluate(services, name, eval_data)
        lineage: dict[str, Any] = {
            "schema": SCHEMA,
            "kind": "lora",
            "base": {"name": spec.name.display, "manifest_digest": spec.digest,
                     "weights_digest": dequant.gguf_digest(spec), "architecture": info.architecture,
                     "license_id": _base_license(models, spec)},
            "data": data,
            "code": {"name": "openzoo", "license": "Apache-2.0", "component": "training code"},
            "hyperparameters": {k: v for k, v in settings.to_json().items() if k != "seed"},
            "seed": settings.seed,
            "libraries": library_versions(),
            "loss_per_step": losses,
            "train": train,
            "evaluation": ({"file": eval_data.path.name, "digest": eval_data.digest,
                            "before": before.to_json() if before else None,
                            "after": after.to_json() if after else None} if eval_data is not None else None),
            "wall_seconds": round(time.time() - started, 2),
            "adapter": {"digest": blob.digest, "size": blob.size, "format": "gguf-lora"},
        }
        if federated is not None:
            lineage["federated"] = dict(federated, **(after_tagging() if after_tagging else {}))
        layer = models.add_blob_layer(mt.LINEAGE, mt.canonical_json(lineage))
        models.update_layers(name, mt.LINEAGE, [layer])
        card = card_from_lineage(lineage, names.parse(name).display, info.metadata())
        models.update_layers(name, mt.CARD, [models.add_blob_layer(mt.CARD, card.render().encode("utf-8"))])
    except BaseException:
        models.delete(name)
        raise
    yield Progress(f"created {names.parse(name).display}")
    return lineage


def read_lineage(models: Models, name: str) -> dict[str, Any]:
    """The lineage record of a model (404 when it has none)."""
    spec = models.resolve(name)
    layer = spec.manifest.first(mt.LINEAGE) if spec.manifest else None
    if layer is None:
        raise NotFound(f"{spec.name.display} has no lineage record", hint="only fine-tuned models have one")
    data: dict[str, Any] = json.loads(models.store.blobs.read(layer.digest))
    return data
