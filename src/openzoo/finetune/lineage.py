"""The lineage record of a fine-tuned (or quantized) model, and the model card generated from it.

The record is a plain JSON layer (:data:`openzoo.store.manifests.LINEAGE`) that certification reads:
the base manifest digest, data digests and declared data licenses, hyperparameters, seed, library
versions, loss per step, held-out loss before and after, wall time and the adapter digest (and, for a
federated run, every round). ``schema`` versions the shape.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from openzoo.datasets.service import Datasets
from openzoo.errors import NotFound
from openzoo.facts.card import ModelCard, card_from_metadata
from openzoo.facts.licenses import describe, lookup
from openzoo.facts.quantization import KIND as QUANTIZE
from openzoo.facts.quantization import render_quantization
from openzoo.models import Models, lineage_of

__all__ = ["SCHEMA", "card_from_lineage", "library_versions", "lineage_of", "read_lineage", "render_lineage",
           "walk_lineage"]
MAX_DEPTH = 8

SCHEMA = "openzoo.lineage/v1"
_LIBRARIES = ("openzoo", "torch", "transformers", "peft", "gguf", "llama-cpp-python", "flwr", "safetensors")


def read_lineage(models: Models, name: str) -> dict[str, Any]:
    """The lineage record of a model (404 when it has none)."""
    spec = models.resolve(name)
    found = lineage_of(models.store, spec.manifest) if spec.manifest else None
    if found is None:
        raise NotFound(f"{spec.name.display} has no lineage record",
                       hint="only fine-tuned and quantized models have one")
    return found


def library_versions(names: Sequence[str] = _LIBRARIES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def card_from_lineage(lineage: Mapping[str, Any], name: str, base_metadata: Mapping[str, Any]) -> ModelCard:
    """The new model's card: base model, datasets, training procedure and evaluation, from the record."""
    base = lineage["base"]
    data = list(lineage.get("data") or [])
    card = card_from_metadata(base_metadata, base.get("license_id"), name=name, base_model=[base["name"]],
                              datasets=[d.get("dataset") or d["file"] for d in data],
                              tags=("lora", "fine-tuned", "openzoo-finetune"))
    card.metadata["base_model_relation"] = "adapter"
    hp = lineage.get("hyperparameters") or {}
    ev = lineage.get("evaluation") or {}
    facts = lookup(base.get("license_id"))
    lines = [f"# {name}", "",
             f"A LoRA fine-tune of {base['name']} (`{base['manifest_digest']}`) made with openzoo; the base "
             "weights are shared unchanged and the adapter is applied when the model is served.", "",
             "## Model details", "",
             f"- Base model: {base['name']}", f"- Architecture: {base.get('architecture', 'unknown')}",
             f"- Adapter: LoRA (`{lineage.get('adapter', {}).get('digest', '')}`)", "",
             "## License", "",
             f"This model inherits the license of its base model: {describe(facts)}", "",
             "## Training data", ""]
    for d in data:
        stored = f"dataset {d['dataset']} (manifest `{d['manifest_digest']}`): " if d.get("dataset") else ""
        lines.append(f"- {stored}`{d['file']}` ({d['records']} records, {d['kind']}, `{d['digest']}`), "
                     f"license: {d.get('license') or 'not declared'}")
    lines += ["", "## Training procedure", "",
              *(f"- {k}: {_fmt(v)}" for k, v in sorted(hp.items())),
              f"- steps: {len(lineage.get('loss_per_step') or [])}",
              f"- wall time: {lineage.get('wall_seconds', 0):.1f} s",
              f"- libraries: {', '.join(f'{k} {v}' for k, v in sorted((lineage.get('libraries') or {}).items()))}"]
    if lineage.get("federated"):
        fed = lineage["federated"]
        lines.append(f"- federated: {len(fed.get('rounds', []))} rounds of FedAvg over LoRA tensors, "
                     f"{fed.get('nodes', 0)} data owners (their data never left them)")
    lines += ["", "## Evaluation results", ""]
    if ev:
        before, after = ev.get("before") or {}, ev.get("after") or {}
        lines += [f"Held-out loss on `{ev.get('file', '')}` scored by openzoo's llama.cpp engine:", "",
                  "| model | loss | perplexity |", "|---|---|---|",
                  f"| base | {_fmt(before.get('loss'))} | {_fmt(before.get('perplexity'))} |",
                  f"| fine-tuned | {_fmt(after.get('loss'))} | {_fmt(after.get('perplexity'))} |"]
    else:
        lines.append("Not provided.")
    card.body = "\n".join(lines) + "\n"
    return card


def render_lineage(lineage: Mapping[str, Any]) -> str:
    """Human-readable summary for ``openzoo show NEW --lineage`` (the full record is ``--lineage --json``)."""
    if lineage.get("kind") == QUANTIZE:
        return render_quantization(lineage)
    base = lineage.get("base") or {}
    ev = lineage.get("evaluation") or {}
    losses = lineage.get("loss_per_step") or []
    rows = [("base", f"{base.get('name')} {base.get('manifest_digest', '')}"),
            ("adapter", (lineage.get("adapter") or {}).get("digest", "")),
            ("seed", lineage.get("seed")),
            ("steps", len(losses)),
            ("loss first/last step", f"{losses[0]:.4f} / {losses[-1]:.4f}" if losses else ""),
            ("wall time", f"{lineage.get('wall_seconds', 0):.1f} s")]
    if ev:
        rows.append(("held-out loss before/after",
                     f"{(ev.get('before') or {}).get('loss', float('nan')):.4f} / "
                     f"{(ev.get('after') or {}).get('loss', float('nan')):.4f}"))
    out = ["  Lineage"] + [f"    {k:<28}{v}" for k, v in rows]
    out.append("\n  Data")
    out += [f"    {d.get('dataset') or d['file']:<28}{d['digest']}  license: {d.get('license') or 'not declared'}"
            for d in lineage.get("data") or []]
    out.append("\n  Hyperparameters")
    out += [f"    {k:<28}{json.dumps(v)}" for k, v in sorted((lineage.get("hyperparameters") or {}).items())]
    fed = lineage.get("federated")
    if fed:
        out.append("\n  Federated rounds")
        for r in fed.get("rounds", []):
            out.append(f"    round {r['round']:<3} nodes {len(r.get('nodes', []))}  "
                       f"adapter {r.get('adapter_digest', '')}  loss {r.get('loss', '')}")
    return "\n".join(out)


def _short(digest: str) -> str:
    return digest[:19] + "…" if digest.startswith("sha256:") else digest


def _dataset_line(datasets: Datasets, entry: Mapping[str, Any]) -> str:
    """A dataset the record cites, resolved to the name it is stored under here (by manifest, else data digest)."""
    manifest, data = entry.get("manifest_digest") or "", entry.get("data_digest") or entry.get("digest") or ""
    found = (datasets.by_digest(manifest) if manifest else []) or (datasets.by_digest(data) if data else [])
    if found:
        d = found[0]
        same = "" if d.digest == manifest or not manifest else ", the same data"
        seal = "sealed" if d.sealed else "not sealed"
        where = f"{d.display} ({d.config.rows} rows, {d.config.license or 'license unknown'}, {seal}{same})"
    else:
        where = f"{entry.get('dataset') or entry.get('file', '?')} (not stored here)"
    return f"{where}  manifest {_short(manifest) or '-'}  data {_short(data)}"


def walk_lineage(models: Models, datasets: Datasets, name: str) -> str:
    """``openzoo show NAME --lineage``: model → adapter → datasets, then the base model (and its own lineage,
    when the base is a fine-tune too), every digest resolved to the names stored in this zoo."""
    spec = models.resolve(name)
    record = read_lineage(models, name)
    out = [f"  Lineage of {spec.name.display}", f"    model     {spec.name.display}  manifest {_short(spec.digest)}"]
    _walk(models, datasets, record, out, "    ", 0)
    return "\n".join(out)


def _walk(models: Models, datasets: Datasets, record: Mapping[str, Any], out: list[str], indent: str,
          depth: int) -> None:
    base = record.get("base") or {}
    label = "base     "
    if record.get("kind") == QUANTIZE:
        quantized = record.get("quantization") or {}
        quality = record.get("quality") or {}
        out.append(f"{indent}quantized {quantized.get('from_type', '?')} → {quantized.get('type', '?')}  "
                   f"KL {quality.get('kl_mean', float('nan')):.5f}  "
                   f"top-1 {quality.get('top1_agreement', float('nan')) * 100:.2f} %  "
                   f"weights {_short(quantized.get('weights_digest', ''))}")
        label = "from     "
    else:
        adapter = record.get("adapter") or {}
        out.append(f"{indent}adapter   LoRA ({adapter.get('format', '?')})  {_short(adapter.get('digest', ''))}")
        for entry in record.get("data") or []:
            out.append(f"{indent}dataset   {_dataset_line(datasets, entry)}")
        evaluation = record.get("evaluation") or {}
        if evaluation.get("dataset") or evaluation.get("digest"):
            out.append(f"{indent}eval data {_dataset_line(datasets, evaluation)}")
    digest = str(base.get("manifest_digest", ""))
    stored = models.store.catalog.names_for(digest) if digest else []
    where = f"stored as {', '.join(stored)}" if stored else "not stored here"
    out.append(f"{indent}{label} {base.get('name', '?')} ({where})  manifest {_short(digest)}")
    parent = lineage_of(models.store, models.store.load_manifest(digest)) if stored and depth < MAX_DEPTH else None
    if parent is not None:
        _walk(models, datasets, parent, out, indent + "  ", depth + 1)
    elif base.get("base_model"):
        out.append(f"{indent}  base      {', '.join(base['base_model'])} (upstream, as the card names it)")
