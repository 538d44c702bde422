"""``openzoo create NAME --quantize TYPE`` / ``/api/create {"quantize": ...}``: a stored model, quantized.

Steps, each reported on the event stream:

1. everything that can be refused is checked before the first event (the type, the source, the held-out
   text, an importance matrix where the type needs one), so the API answers a real 400;
2. llama.cpp's ``llama_model_quantize`` writes the new GGUF into a temporary file under the store's home,
   in a thread (progress: bytes written against the size the type implies). The source is read with
   ``allow_requantize``: a quantized source (the default model is Q4_K_M) is dequantized tensor by
   tensor and quantized again; ``F16``/``F32`` give its dequantization;
3. the file is validated like any import, then the source and the new model read the same held-out text
   through openzoo's scoring path (:mod:`.measure`): KL divergence, top-1 agreement, perplexity of both;
4. one manifest is written: the new weights, the source's template, system prompt, parameters, messages
   and license, a config, the lineage record (``kind: "quantize"``) and a card with the figures. Until
   then nothing is stored; blobs written before a failure are removed again.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.domain import Domain
from openzoo.errors import EngineError, InvalidRequest, NotSupported, OpenzooError
from openzoo.events import Progress
from openzoo.facts.quantization import KIND, card_for
from openzoo.formats.gguf import model_config, validate_gguf
from openzoo.models import CreateSpec, ModelSpec
from openzoo.quantize import imatrix as im
from openzoo.quantize.measure import DEFAULT_CONTEXT, DEFAULT_TOKENS, HeldOut, MeasureInputs, builtin_heldout, measure
from openzoo.quantize.types import QuantType, parse_type
from openzoo.runtime.llamacpp.native import L, ensure_backend
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest

__all__ = ["QuantizeRequest", "heldout_text", "quantize", "quantize_file", "refuse_extras", "request_from_api"]

#: Layers a quantized model takes over from its source; weights, card, seal, lineage, audits and
#: anything describing the source's own files are its own.
_INHERITED = (mt.TEMPLATE, mt.SYSTEM, mt.PARAMS, mt.MESSAGES, mt.LICENSE)


@dataclass(frozen=True, slots=True)
class QuantizeRequest:
    """A model to make: ``name`` = ``source`` quantized to ``type``, measured on ``heldout`` (a stored
    dataset; None for the built-in text); ``imatrix`` names the text an importance matrix is computed
    from (``"builtin"`` or a stored dataset), for the types that need one."""

    name: str
    source: str
    type: str
    heldout: str | None = None
    tokens: int = DEFAULT_TOKENS
    context: int = DEFAULT_CONTEXT
    imatrix: str | None = None


def refuse_extras(present: dict[str, bool]) -> None:
    """A quantized model takes its source's template, system prompt, parameters and license; other settings
    in the same request are refused (make them a second model FROM the quantized one)."""
    given = [field for field, there in present.items() if there]
    if given:
        raise InvalidRequest(f"quantizing takes the source's settings; {', '.join(given)} cannot be set in the same "
                             "create", hint="create the quantized model first, then a second model FROM it with "
                                            f"the {', '.join(given)} you want", param="quantize")


def request_from_api(spec: CreateSpec, qtype: str, *, imatrix: str | None, heldout: str | None,
                     tokens: int | None) -> QuantizeRequest:
    """``/api/create`` with ``quantize``: ``from`` names the stored model to quantize; nothing else may be set."""
    if not spec.base or spec.files:
        raise InvalidRequest("quantize needs 'from' naming a stored model", param="from",
                             hint="create or pull the source model first, then quantize it with 'from'")
    refuse_extras({"files": bool(spec.files), "adapters": bool(spec.adapters), "template": spec.template is not None,
                   "system": spec.system is not None, "parameters": bool(spec.parameters),
                   "license": bool(spec.license), "messages": bool(spec.messages)})
    return QuantizeRequest(name=spec.name, source=spec.base, type=qtype, heldout=heldout,
                           tokens=tokens or DEFAULT_TOKENS, imatrix=imatrix)


def heldout_text(services: Domain, spec: ModelSpec, dataset: str | None) -> HeldOut:
    """The built-in held-out text, or a stored dataset's records (``text``, or chat rendered) one per paragraph."""
    if dataset is None or dataset == "builtin":
        return builtin_heldout()
    from openzoo.finetune.run import training_data

    found = services.datasets.get(dataset)
    data = training_data(services, spec, found.display, None)
    return HeldOut(f"dataset:{found.display}@{found.digest}", "\n\n".join(data.texts))


def _source_spec(services: Domain, source: str) -> ModelSpec:
    spec = services.models.resolve(source)
    if spec.adapters:
        raise NotSupported(f"{spec.name.display} carries LoRA adapters; openzoo quantizes base weights only",
                           hint="quantize its base model, then apply the adapter to the result")
    return spec


def quantize(services: Domain, req: QuantizeRequest) -> Iterator[Progress]:
    """Make ``req.name``; yields progress and ends with ``success`` (its detail holds the lineage record)."""
    qtype = parse_type(req.type)
    target = names.parse(req.name)
    spec = _source_spec(services, req.source)
    if target.key == spec.name.key:
        raise InvalidRequest(f"{target.display} would replace the model it is quantized from",
                             hint="give the quantized model a name of its own, e.g. NAME:q4_0", param="model")
    if qtype.needs_imatrix and req.imatrix is None:
        raise NotSupported(f"{qtype.name} needs an importance matrix: llama.cpp refuses to quantize to it without one",
                           hint="add --imatrix builtin (or --imatrix DATASET) to compute one, or pick a type that "
                                "needs none, such as Q2_K or IQ3_XXS", param="quantize")
    inputs = MeasureInputs(heldout_text(services, spec, req.heldout), req.tokens, req.context)
    inputs.check()
    calibration = heldout_text(services, spec, req.imatrix) if req.imatrix is not None else None
    threads = services.config.num_threads
    info = services.models.gguf_info(spec)
    store = services.store
    source_layer = spec.manifest.first(mt.MODEL) if spec.manifest is not None else None
    if source_layer is None or spec.manifest is None:
        raise NotSupported(f"{spec.name.display} has no GGUF weights to quantize")
    existing = set(store.blobs.digests())
    added: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="openzoo-quantize-", dir=store.home) as tmp:
            out = Path(tmp) / "model.gguf"
            matrix: im.ImportanceMatrix | None = None
            if calibration is not None:
                yield Progress(f"computing an importance matrix from {calibration.source}")
                matrix = im.compute(spec.weights, calibration, n_threads=threads)
            status = f"quantizing {spec.name.display} ({info.quantization}) to {qtype.name}"
            seconds = yield from quantize_file(spec.weights, out, qtype, status=status,
                                               estimate=int(info.parameter_count * qtype.bits / 8),
                                               n_threads=threads, imatrix=matrix)
            yield Progress("validating the quantized GGUF")
            new_info = validate_gguf(out)
            yield Progress(f"measuring {qtype.name} against {spec.name.display} on {inputs.tokens} held-out tokens")
            quality = measure(spec.weights, out, inputs, n_threads=threads)
            yield Progress("copying model data")
            blob = store.blobs.put_file(out)
        if blob.digest not in existing:
            added.append(blob.digest)
        record = _lineage(services, spec, info.architecture, qtype, info.quantization, source_layer, blob.digest,
                          blob.size, seconds, quality, matrix)
        config = model_config(new_info, {"parent_model": spec.name.display})
        card = card_for(record, target.display, new_info.metadata())
        layers = [Layer(mt.MODEL, blob.digest, blob.size),
                  *(layer for layer in spec.manifest.layers if layer.media_type in _INHERITED)]
        written = [services.models.add_blob_layer(mt.CONFIG_MEDIA_TYPE, mt.canonical_json(config)),
                   services.models.add_blob_layer(mt.LINEAGE, mt.canonical_json(record)),
                   services.models.add_blob_layer(mt.CARD, card.render().encode("utf-8"))]
        added += [layer.digest for layer in written if layer.digest not in existing]
        yield Progress("writing manifest")
        store.tag(target, Manifest(written[0], (*layers, *written[1:])))
    except BaseException:
        store.remove_unreferenced(added)
        raise
    yield Progress("success", detail={"lineage": record})


def _lineage(services: Domain, spec: ModelSpec, architecture: str, qtype: QuantType, from_type: str, source: Layer,
             digest: str, size: int, seconds: float, quality: dict[str, Any],
             matrix: im.ImportanceMatrix | None) -> dict[str, Any]:
    from openzoo.finetune.lineage import SCHEMA, library_versions
    from openzoo.show import license_id

    return {
        "schema": SCHEMA,
        "kind": KIND,
        "base": {"name": spec.name.display, "manifest_digest": spec.digest, "weights_digest": source.digest,
                 "architecture": architecture, "license_id": license_id(spec),
                 "base_model": _upstream(services, spec)},
        "quantization": {"type": qtype.name, "ftype": qtype.ftype, "from_type": from_type, "allow_requantize": True,
                         "imatrix": matrix.to_json() if matrix is not None else None,
                         "seconds": round(seconds, 2), "weights_digest": digest, "size": size,
                         "source_size": source.size, "size_ratio": size / source.size},
        "quality": {**quality, "method": "openzoo PromptScorer: llama.cpp logits, full-vocabulary log-softmax in "
                                         "float64, KL(source || quantized) per position"},
        "libraries": library_versions(("openzoo", "llama-cpp-python", "numpy")),
    }


def _upstream(services: Domain, spec: ModelSpec) -> list[str]:
    """The source's own base models as its card names them (the default model's: google/gemma-3-270m)."""
    from openzoo.certify.evidence import Evidence

    try:
        card, _ = Evidence(services.store).card_or_draft(spec.name.display)
    except OpenzooError:  # a card that cannot be read leaves the upstream unnamed, no more
        return []
    return [str(b) for b in card.metadata.get("base_model") or []]


def quantize_file(source: Path, out: Path, qtype: QuantType, *, status: str, estimate: int, n_threads: int = 0,
                  imatrix: im.ImportanceMatrix | None = None) -> Generator[Progress, None, float]:
    """Run ``llama_model_quantize(source → out)`` in a thread, yielding progress; return the seconds it took."""
    ensure_backend()
    params = L.llama_model_quantize_default_params()
    params.ftype = qtype.ftype
    params.allow_requantize = True
    params.nthread = n_threads if n_threads > 0 else (os.cpu_count() or 1)
    keep: Any = None  # the importance matrix array must outlive the call
    if imatrix is not None:
        params.imatrix, keep = imatrix.as_params()
    result: list[int | BaseException] = []

    def work() -> None:
        held = (params, keep)  # alive for as long as llama.cpp reads them, even if the caller goes away
        try:
            result.append(int(L.llama_model_quantize(str(source).encode(), str(out).encode(), params)))
        except BaseException as exc:  # handed to the generator, which raises it
            result.append(exc)
        del held

    started = time.monotonic()
    thread = threading.Thread(target=work, name="llama.cpp quantize", daemon=True)
    thread.start()
    yield Progress(status, total=estimate, completed=0)
    while thread.is_alive():
        thread.join(0.5)
        written = out.stat().st_size if out.exists() else 0
        yield Progress(status, total=estimate, completed=min(written, estimate))
    seconds = time.monotonic() - started
    outcome = result[0] if result else EngineError("the quantize thread ended without a result")
    if isinstance(outcome, BaseException):
        raise outcome
    if outcome != 0 or not out.is_file():
        raise EngineError(f"llama.cpp could not quantize {source.name} to {qtype.name} "
                          f"(llama_model_quantize returned {outcome})",
                          hint="run with OPENZOO_DEBUG=1 to see llama.cpp's log")
    yield Progress(status, total=estimate, completed=estimate)
    return seconds
