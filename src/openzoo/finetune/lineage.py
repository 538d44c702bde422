"""The lineage record of a fine-tuned model, and the model card generated from it.

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

from openzoo.certify.card import ModelCard, card_from_metadata
from openzoo.certify.licenses import describe, lookup

__all__ = ["SCHEMA", "card_from_lineage", "library_versions", "render_lineage"]

SCHEMA = "openzoo.lineage/v1"
_LIBRARIES = ("openzoo", "torch", "transformers", "peft", "gguf", "llama-cpp-python", "flwr", "safetensors")


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
                              datasets=[d["file"] for d in data], tags=("lora", "fine-tuned", "openzoo-finetune"))
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
        lines.append(f"- `{d['file']}` ({d['records']} records, {d['kind']}, `{d['digest']}`), "
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
    out += [f"    {d['file']:<28}{d['digest']}  license: {d.get('license') or 'not declared'}"
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
