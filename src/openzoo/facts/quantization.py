"""A quantized model's lineage record, read back: its card, and the lines ``show`` and the web page print.

The record (``kind: "quantize"`` in the :data:`~openzoo.store.manifests.LINEAGE` layer) is written once by
:mod:`.run`; it and the card made from it are layers of the model's manifest, so a seal covers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openzoo.facts.card import ModelCard, card_from_metadata
from openzoo.facts.licenses import describe, lookup

__all__ = ["KIND", "card_for", "quality_lines", "render_quantization", "summary"]

KIND = "quantize"


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a table row shows: type, size ratio, KL, top-1, both perplexities, tokens scored."""
    q, m = record.get("quantization") or {}, record.get("quality") or {}
    return {"type": q.get("type", "?"), "from_type": q.get("from_type", "?"), "size": q.get("size"),
            "size_ratio": q.get("size_ratio"), "kl_mean": m.get("kl_mean"), "top1_agreement": m.get("top1_agreement"),
            "ppl_source": m.get("ppl_source"), "ppl_quantized": m.get("ppl_quantized"),
            "tokens_scored": m.get("tokens_scored")}


def quality_lines(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Label/value pairs of what the quantization cost and how it was measured."""
    q, m = record.get("quantization") or {}, record.get("quality") or {}
    top1 = m.get("top1_agreement")
    return [
        ("quantized", f"{q.get('from_type', '?')} → {q.get('type', '?')} in {_num(q.get('seconds'), 1)} s"
                      f"{' with an importance matrix' if q.get('imatrix') else ''}"),
        ("size ratio", f"{_num(q.get('size_ratio'), 3)} ({q.get('size', '?')} of {q.get('source_size', '?')} bytes)"),
        ("KL divergence (mean)", f"{_num(m.get('kl_mean'), 5)} nats (max {_num(m.get('kl_max'), 3)})"),
        ("top-1 agreement", f"{top1 * 100:.2f} %" if isinstance(top1, int | float) else "?"),
        ("perplexity source", _num(m.get("ppl_source"))),
        ("perplexity quantized", _num(m.get("ppl_quantized"))),
        ("held-out text", f"{m.get('source', '?')} {m.get('digest', '')}"),
        ("tokens scored / context",
         f"{m.get('tokens_scored', '?')} of {m.get('tokens', '?')} / {m.get('context', '?')}"),
    ]


def render_quantization(record: Mapping[str, Any]) -> str:
    """``openzoo show NAME --lineage`` body for a quantized model (the walk above it names the models)."""
    base = record.get("base") or {}
    rows = [("source", f"{base.get('name')} {base.get('manifest_digest', '')}"),
            ("source weights", base.get("weights_digest", "")),
            ("weights", (record.get("quantization") or {}).get("weights_digest", "")),
            *quality_lines(record)]
    return "\n".join(["  Quantization"] + [f"    {k:<28}{v}" for k, v in rows])


def card_for(record: Mapping[str, Any], name: str, gguf_metadata: Mapping[str, Any]) -> ModelCard:
    """The quantized model's card: what it was made from, how, and the measured cost (Hugging Face's
    ``base_model_relation: quantized``)."""
    base = record["base"]
    q, m = record["quantization"], record["quality"]
    upstream = list(base.get("base_model") or []) or [base["name"]]
    card = card_from_metadata(gguf_metadata, base.get("license_id"), name=name, base_model=upstream,
                              tags=("quantized", str(q["type"]), "openzoo-quantize"))
    card.metadata["base_model_relation"] = "quantized"
    imatrix = q.get("imatrix")
    lines = [f"# {name}", "",
             f"{base['name']} (`{base['manifest_digest']}`, {q['from_type']}) quantized to {q['type']} by openzoo "
             f"with llama.cpp's `llama_model_quantize`"
             f"{' (requantized from the quantized weights)' if q.get('allow_requantize') else ''}.", "",
             "## Model details", "",
             f"- Source model: {base['name']}", f"- Architecture: {base.get('architecture', 'unknown')}",
             f"- Quantization: {q['type']} (llama_ftype {q['ftype']}), from {q['from_type']}",
             f"- Importance matrix: {imatrix['source'] + ' ' + imatrix['digest'] if imatrix else 'none'}",
             f"- Size: {q['size']} bytes, {_num(q['size_ratio'], 3)} of the source's {q['source_size']}", "",
             "## License", "",
             f"This model inherits the license of its source: {describe(lookup(base.get('license_id')))}", "",
             "## Evaluation results", "",
             f"Measured by openzoo's scoring path (llama.cpp, full-vocabulary distributions in float64) on "
             f"{m['tokens_scored']} tokens of held-out text `{m['source']}` (`{m['digest']}`), read in prompts of "
             f"at most {m['context']} tokens after BOS; the source model read the same tokens.", "",
             "| measure | value |", "|---|---|",
             f"| KL divergence from the source, mean (nats) | {_num(m['kl_mean'], 5)} |",
             f"| KL divergence, largest at one position (nats) | {_num(m['kl_max'], 4)} |",
             f"| top-1 agreement with the source | {m['top1_agreement'] * 100:.2f} % |",
             f"| perplexity, source | {_num(m['ppl_source'])} |",
             f"| perplexity, quantized | {_num(m['ppl_quantized'])} |",
             f"| size ratio | {_num(q['size_ratio'], 3)} |", "",
             "## Training data", "",
             "None: quantization changes only how the source's weights are stored.", ""]
    card.body = "\n".join(lines)
    return card
