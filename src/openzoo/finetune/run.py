"""``openzoo finetune``: data → LoRA training → llama.cpp adapter → a new model with its lineage.

Training data is a stored dataset (``--data NAME``) or a data file (``--data FILE``), which is imported as
a dataset (``data/<file>:<digest>``) so the lineage cites every dataset by name, manifest digest and data
digest. Order matters for "nothing stored on failure": everything that can be checked is checked before
the base is loaded (settings, names, base model, every data line, the import of a data file); the data
file's dataset and the new model are stored only after training, the model tagged once the adapter GGUF
has been written and validated, and if scoring or writing the lineage fails afterwards both are removed
again. Ctrl-C during training leaves a checkpoint (``--resume``) and no model.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.datasets.service import resolve_license
from openzoo.domain import Domain
from openzoo.errors import Conflict, InvalidRequest, NotFound
from openzoo.events import Progress
from openzoo.facts.datafiles import SUFFIXES, iter_rows, sha256_file
from openzoo.finetune import dequant
from openzoo.finetune.data import Dataset, DataSource, load_jsonl, load_rows
from openzoo.finetune.evaluate import EvalResult, heldout_loss
from openzoo.finetune.lineage import SCHEMA, card_from_lineage, library_versions, read_lineage
from openzoo.finetune.lora import LoraSettings, Trainer, tokenize
from openzoo.models import CreateSpec, Models, ModelSpec
from openzoo.store import manifests as mt

__all__ = ["FinetuneRequest", "finetune", "load_data", "read_lineage", "run_dir", "store_result", "training_data"]

DEFAULT_DATA_LICENSE = None
SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class FinetuneRequest:
    base: str
    data: Path | str  # a data file, or the name of a stored dataset
    name: str
    settings: LoraSettings = field(default_factory=LoraSettings)
    eval_data: Path | str | None = None
    resume: bool = False
    data_license: str | None = None


def run_dir(services: Domain, name: str) -> Path:
    """Where a run's checkpoints live until it finishes: ``$OPENZOO_HOME/finetune/runs/<name>``."""
    return Path(services.config.home) / "finetune" / "runs" / SAFE.sub("_", names.parse(name).key)


def _renderer(models: Models, spec: ModelSpec) -> Callable[[Sequence[Mapping[str, Any]]], str]:
    template = models.template_for(spec)
    return lambda messages: template.render(messages, add_generation_prompt=False)


def load_data(models: Models, spec: ModelSpec, path: Path, license_id: str | None = None) -> Dataset:
    return load_jsonl(path, _renderer(models, spec))


def file_dataset_name(path: Path, data_digest: str) -> str:
    """The dataset a data file given by path is stored as: ``data/<file stem>:<first 12 hex of its digest>``."""
    stem = re.sub(r"[^a-z0-9_.-]+", "-", path.stem.lower()).strip("-.")[:80] or "data"
    return f"data/{stem}:{data_digest.removeprefix('sha256:')[:12]}"


def training_data(services: Domain, spec: ModelSpec, value: Path | str, license_id: str | None) -> Dataset:
    """Training (or held-out) data from a stored dataset's name or from a data file.

    A file is validated as a dataset import would be (and planned for import: see :class:`DataSource`);
    ``license_id`` is its license. A dataset brings its own license; another one given is refused.
    """
    render = _renderer(services.models, spec)
    path = Path(value)
    if isinstance(value, Path) or path.is_file() or path.suffix in SUFFIXES:
        if path.is_dir():
            raise InvalidRequest(f"{path} is a folder", hint=f"import it first: openzoo dataset import {path} "
                                                              "--name NAME, then pass --data NAME")
        if not path.is_file():
            raise NotFound(f"no such data file: {path}", hint="pass a data file or a dataset name with --data")
        plan = services.datasets.plan([path], file_dataset_name(path, sha256_file(path)), license=license_id)
        (source, facts), = plan.files
        rows = ((source.label, n, row) for n, row in iter_rows(source.path, facts.format, source.label))
        origin = DataSource(plan.name.display, plan.manifest_digest, plan.data_digest, plan.config.license, plan)
        return load_rows(rows, render, path=path, digest=plan.data_digest, file=path.name, source=origin)
    found = services.datasets.get(str(value))
    if license_id and found.config.license and resolve_license(license_id) != found.config.license:
        raise InvalidRequest(f"{found.display} is licensed {found.config.license}, not {license_id}",
                             hint="leave out --data-license: a stored dataset brings its own")
    origin = DataSource(found.display, found.digest, found.config.data_digest, found.config.license)
    rows = ((f"{found.display}/{name}", n, row) for name, n, row in services.datasets.rows(found))
    first = found.config.files[0]
    return load_rows(rows, render, path=services.store.blobs.path(first.digest), digest=found.config.data_digest,
                     file=", ".join(f.name for f in found.config.files), source=origin)


def _base_license(models: Models, spec: ModelSpec) -> str | None:
    layer = spec.manifest.first(mt.LICENSE) if spec.manifest else None
    return layer.annotations.get("org.openzoo.license.id") if layer else None


def prepare(services: Domain, req: FinetuneRequest) -> tuple[ModelSpec, Dataset, Dataset | None]:
    """Every check that needs no training: settings, names, base, data (with line numbers)."""
    req.settings.check()
    names.parse(req.name)
    spec = services.models.resolve(req.base)
    data = training_data(services, spec, req.data, req.data_license)
    eval_data = training_data(services, spec, req.eval_data, req.data_license) if req.eval_data else None
    if names.parse(req.name).key == spec.name.key:
        raise Conflict("the fine-tuned model needs a new name, not the base's", hint="pass --name NEW")
    return spec, data, eval_data


def load_hf(folder: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return model, tokenizer


def evaluate(services: Domain, model: str, data: Dataset | None) -> EvalResult | None:
    return heldout_loss(services.inference, model, data.texts) if data is not None else None


def finetune(services: Domain, req: FinetuneRequest,
             should_stop: Callable[[], bool] | None = None) -> Iterator[Progress]:
    """Run a whole fine-tune, yielding progress; the last event's ``detail`` holds the lineage."""
    started = time.time()
    spec, data, eval_data = prepare(services, req)
    yield Progress(f"validated {len(data.texts)} records from {data.source.dataset if data.source else data.label}")
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
    with dequant.dequantized(services.store, spec, dequant.DequantCache.from_config(services.config)) as hf:
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
    created = yield from store_datasets(services, [data, eval_data])
    yield Progress("writing the LoRA adapter as GGUF")
    try:
        lineage = yield from store_result(
            services, spec, req.name, lora, req.settings,
            data=[{**data.to_json(), "license": data.source.license if data.source else req.data_license}],
            eval_data=eval_data, before=before,
            losses=trainer.losses, started=started, train={"tokens": result.tokens,
                                                           "tokens_per_second": round(result.tokens_per_second, 1),
                                                           "first_step_seconds": result.first_step_seconds,
                                                           "base_load_seconds": round(hf.load_seconds, 2),
                                                           "base_from_cache": hf.from_cache,
                                                           "base_source": hf.source})
    except BaseException:
        for name in created:
            services.datasets.delete(name)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    yield Progress("success", detail={"lineage": lineage})


def store_datasets(services: Domain, data: Sequence[Dataset | None]) -> Generator[Progress, None, list[str]]:
    """Import the data files given by path as the datasets their lineage names; return those newly created."""
    created: list[str] = []
    for item in data:
        plan = item.source.plan if item is not None and item.source is not None else None
        if plan is None:
            continue
        if services.store.catalog.find(plan.name) is None:
            created.append(plan.name.display)
        yield Progress(f"storing {item.label if item else ''} as dataset {plan.name.display}")
        for _ in services.datasets.commit(plan):
            pass
    return created


def store_result(services: Domain, spec: ModelSpec, name: str, lora: dict[str, Any], settings: LoraSettings, *,
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
    # trained on chat records, a base model becomes a chat model (``run`` then uses its chat template)
    chat = any("chat" in str(item.get("kind", "")) for item in data) or None
    yield from models.create(CreateSpec(name=name, base=spec.name.display, adapters={"adapter.gguf": blob.digest},
                                        instruction_tuned=chat))
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
            "evaluation": ({**eval_data.to_json(),
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

