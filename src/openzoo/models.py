"""Model management: import, create, pull, copy, delete, list and show.

The domain layer for every surface (HTTP handlers and CLI call these; neither touches the store
directly). Long operations are generators of :class:`~openzoo.events.Progress` events so that the
API can stream them as NDJSON and the CLI can draw progress bars from the same source.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.errors import InvalidModelFile, InvalidRequest, NotFound, NotSupported, OpenzooError
from openzoo.events import Progress
from openzoo.formats.gguf import GGUFInfo, check_adapter, model_config, validate_gguf
from openzoo.formats.templates import ChatTemplate, template_for_model
from openzoo.names import ModelName
from openzoo.options import parse as parse_options
from openzoo.store import manifests as mt
from openzoo.store.blobs import BlobInfo
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store, StoredModel

DEFAULT_MODEL = "gemma3:270m"

GEMMA_LICENSE_ID = "LicenseRef-Gemma"
GEMMA_LICENSE_TEXT = """Gemma Terms of Use

This model (Gemma 3 270M, base model, GGUF Q4_K_M) is provided under and subject to the Gemma Terms of
Use (https://ai.google.dev/gemma/terms) and the Gemma Prohibited Use Policy
(https://ai.google.dev/gemma/prohibited_use_policy).

It is NOT open source: the terms restrict how the model and its derivatives may be used, and they are
not an OSI-approved license. Redistribution must carry these terms and the use restrictions onward.
"""

#: The default model's Modelfile ``PARAMETER``s, as Ollama's library models carry theirs: stored in its
#: params layer at import (as ``openzoo create`` stores a Modelfile's), they apply wherever a request sets
#: no value of its own. Chosen for a small *base* model: a bounded answer (``num_predict``); a penalty on
#: the loops such a model falls into even when sampling ("The sun is in the sky because the sun is in the
#: sky." eight times in 128 tokens without it), over the last ``repeat_last_n`` tokens; Google's sampling
#: settings for Gemma 3 (``top_k``, ``top_p``) with a cooler temperature that keeps a completion on its
#: prompt's topic. A request that wants plain greedy decoding (the chosen token = the most likely one its
#: logprobs report) sends ``repeat_penalty: 1``. No ``stop``: a stop string (say ``<start_of_image>``, which
#: this model writes where a document of its training data ends) would swallow the one generated token
#: lm-eval's ``echo`` scoring requests expect.
DEFAULT_MODEL_PARAMETERS: dict[str, Any] = {
    "num_predict": 128,
    "repeat_last_n": 64,
    "repeat_penalty": 1.15,
    "temperature": 0.6,
    "top_k": 64,
    "top_p": 0.95,
}


@dataclass(frozen=True, slots=True)
class ModelDetails:
    """The ``details`` object Ollama clients expect in list, show and ps."""

    format: str = "gguf"
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""
    parent_model: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"parent_model": self.parent_model, "format": self.format, "family": self.family,
                "families": list(self.families), "parameter_size": self.parameter_size,
                "quantization_level": self.quantization_level}


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    digest: str
    size: int
    modified_at: float
    details: ModelDetails


@dataclass(slots=True)
class ModelSpec:
    """Everything needed to run a stored model, read once from its manifest."""

    name: ModelName
    digest: str
    weights: Path
    config: dict[str, Any]
    details: ModelDetails
    size: int
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    adapters: list[Path] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def instruction_tuned(self) -> bool:
        """A chat model (False: a base model, prompted as a completion by ``run`` and the playground).

        Recorded at import (:mod:`openzoo.formats.model_kind`); a Modelfile ``TEMPLATE`` declares a chat
        model; models stored before the record was kept fall back to whether the GGUF has a template.
        """
        if self.template is not None:
            return True
        recorded = self.config.get("instruction_tuned")
        return recorded if isinstance(recorded, bool) else bool(self.config.get("has_chat_template"))

    @property
    def capabilities(self) -> list[str]:
        caps = ["completion"]
        if self.config.get("capabilities"):
            return list(self.config["capabilities"])
        return caps


@dataclass(frozen=True, slots=True)
class CreateSpec:
    """A model to create: a base (model name, blob digest or, for in-process callers, a GGUF path) plus
    layers that replace the base's."""

    name: str
    base: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    adapters: Mapping[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    parameters: Mapping[str, Any] | None = None
    license: tuple[str, ...] = ()
    messages: tuple[dict[str, Any], ...] = ()
    allow_paths: bool = False
    base_dir: Path | None = None
    adapter_paths: tuple[str, ...] = ()
    #: record the new model as a chat (True) or base (False) model; None keeps the base's record
    instruction_tuned: bool | None = None


def _details(config: Mapping[str, Any]) -> ModelDetails:
    return ModelDetails(
        format=str(config.get("model_format", "gguf")),
        family=str(config.get("model_family", "")),
        families=tuple(config.get("model_families") or ()),
        parameter_size=str(config.get("model_type", "")),
        quantization_level=str(config.get("file_type", "")),
        parent_model=str(config.get("parent_model", "")),
    )


class Models:
    """Model management over one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # reading

    def list_models(self) -> list[ModelSummary]:
        """Every model, newest first; datasets share the catalog but are never listed here (nor in
        ``/api/tags``: Ollama clients must not see them)."""
        result = []
        for entry in self.store.catalog.entries():
            try:
                manifest = self.store.load_manifest(entry.manifest_digest)
                if manifest.kind == "dataset":
                    continue
                config = self._config(manifest)
            except OpenzooError:
                continue
            result.append(ModelSummary(entry.display, entry.manifest_digest, self.store.manifest_size(manifest),
                                       entry.modified_at, _details(config)))
        return result

    def resolve(self, name: str) -> ModelSpec:
        """Read a model's manifest into a :class:`ModelSpec`; 404 when the name is unknown."""
        parsed = names.parse(name)
        stored = self.store.resolve(parsed)
        return self._spec(parsed, stored)

    def _config(self, manifest: Manifest) -> dict[str, Any]:
        try:
            data = json.loads(self.store.blobs.read(manifest.config.digest))
        except ValueError as exc:  # a pulled manifest's config need not be openzoo's JSON
            raise InvalidModelFile(f"model config is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidModelFile("model config is not an object")
        return data

    def _text(self, layer: Layer | None) -> str | None:
        return None if layer is None else self.store.blobs.read(layer.digest).decode("utf-8")

    def _spec(self, name: ModelName, stored: StoredModel) -> ModelSpec:
        manifest = stored.manifest
        _refuse_dataset(name, manifest)
        model_layer = manifest.first(mt.MODEL)
        if model_layer is None:
            raise NotSupported(f'"{name.display}" has no model weights')
        config = self._config(manifest)
        params_text = self._text(manifest.first(mt.PARAMS))
        messages_text = self._text(manifest.first(mt.MESSAGES))
        return ModelSpec(
            name=name,
            digest=stored.digest,
            weights=self.store.blobs.path(model_layer.digest),
            config=config,
            details=_details(config),
            size=self.store.manifest_size(manifest),
            template=self._text(manifest.first(mt.TEMPLATE)),
            system=self._text(manifest.first(mt.SYSTEM)),
            parameters=json.loads(params_text) if params_text else {},
            messages=json.loads(messages_text) if messages_text else [],
            licenses=[self._text(layer) or "" for layer in manifest.layers_of(mt.LICENSE)],
            adapters=[self.store.blobs.path(layer.digest) for layer in manifest.layers_of(mt.ADAPTER)],
            manifest=manifest,
        )

    def gguf_info(self, spec: ModelSpec) -> GGUFInfo:
        return validate_gguf(spec.weights)

    def template_for(self, spec: ModelSpec, override: str | None = None) -> ChatTemplate:
        """A request's TEMPLATE wins, then the Modelfile's, then the GGUF's own, then the built-in."""
        gguf_template = self.gguf_info(spec).chat_template if spec.config.get("has_chat_template") else None
        return template_for_model(str(spec.config.get("architecture", "")), gguf_template=gguf_template,
                                  modelfile_template=override or spec.template)

    # writing

    def update_layers(self, name: str, media_type: str, layers: list[Layer]) -> str:
        """Give a model new layers of one type (a card, a seal, an audit report, a lineage record).

        The new manifest replaces the name's; the old manifest is kept in the catalog's history, so
        nothing certified or audited before disappears. Returns the new manifest digest.
        """
        parsed = names.parse(name)
        stored = self.store.resolve(parsed)
        manifest = stored.manifest.replace_layers(media_type, layers)
        return self.store.tag(parsed, manifest, keep_history=True)

    def add_blob_layer(self, media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> Layer:
        """Store ``data`` as a blob and describe it as a layer of ``media_type``."""
        blob = self.store.blobs.put_bytes(data)
        return Layer(media_type, blob.digest, blob.size, dict(annotations or {}))

    def copy(self, source: str, destination: str) -> None:
        self.store.catalog.copy(names.parse(source), names.parse(destination))

    def delete(self, name: str) -> list[str]:
        parsed = names.parse(name)
        _refuse_dataset(parsed, self.store.resolve(parsed).manifest)
        return self.store.delete(parsed)

    def import_gguf(self, path: Path, name: str, *, license_text: str | None = None,
                    license_id: str | None = None, expected_digest: str | None = None) -> Iterator[Progress]:
        """Validate a GGUF file, store it and tag it as ``name``; yields progress."""
        parsed = names.parse(name)
        yield Progress("parsing GGUF")
        info = validate_gguf(path)
        total = path.stat().st_size
        blob = yield from self._put_with_progress(file_chunks(path), total, expected_digest,
                                                  f"copying model data {path.name}")
        yield from self._tag_new(parsed, info, blob.digest, blob.size, license_text=license_text,
                                 license_id=license_id)

    def import_folder(self, path: Path, name: str, *, license_text: str | None = None,
                      license_id: str | None = None) -> Iterator[Progress]:
        """Import a Hugging Face-style safetensors folder as ``name``; yields progress.

        The folder is validated completely before anything is written (see
        :func:`~openzoo.formats.safetensors_folder.inspect_folder`), then converted to a GGUF in a
        temporary file (the model layer: what llama.cpp serves). The original safetensors files and the
        config/tokenizer files are stored too, as their own layers, so that ``openzoo finetune`` loads
        the weights into transformers as they are instead of dequantizing the GGUF. If anything fails
        after the first blob is written, the blobs this import added are removed again: a failed
        import leaves the store as it was.
        """
        import tempfile

        from openzoo.formats import safetensors_folder as st
        from openzoo.formats.safetensors_gguf import convert_folder

        parsed = names.parse(name)
        yield Progress(f"checking {path}")
        folder = st.inspect_folder(path)

        existing = set(self.store.blobs.digests())
        added: list[str] = []  # blobs this import created, removed again if it fails

        def put(source: Path, media_type: str, annotations: Mapping[str, str]) -> Layer:
            blob = self.store.blobs.put_file(source)
            if blob.digest not in existing:
                added.append(blob.digest)
            return Layer(media_type, blob.digest, blob.size, dict(annotations))

        try:
            with tempfile.TemporaryDirectory(prefix="openzoo-import-", dir=self.store.home) as tmp:
                gguf_path = Path(tmp) / "model.gguf"
                yield Progress(f"converting {folder.architecture} to GGUF")
                convert_folder(folder, gguf_path, name=parsed.display)
                info = validate_gguf(gguf_path)
                yield Progress("copying model data")
                layers = [put(gguf_path, mt.MODEL, {})]
            for weights in folder.weights:
                yield Progress(f"copying {weights.name}")
                layers.append(put(weights, st.SAFETENSORS_WEIGHTS, {st.FILENAME_ANNOTATION: weights.name}))
            layers += [put(file, st.HF_FILE, {st.FILENAME_ANNOTATION: file.name}) for file in folder.files]
            if license_text:
                lic = self.store.blobs.put_bytes(license_text.encode())
                if lic.digest not in existing:
                    added.append(lic.digest)
                lic_annotations = {"org.openzoo.license.id": license_id} if license_id else {}
                layers.append(Layer(mt.LICENSE, lic.digest, lic.size, lic_annotations))
            config = self._put_json(model_config(info, {
                "model_format": "gguf", "source_format": "safetensors", "hf_architecture": folder.architecture,
                "file_type": info.quantization}))
            if config.digest not in existing:
                added.append(config.digest)
            yield Progress("writing manifest")
            self.store.tag(parsed, Manifest(config, tuple(layers)))
        except BaseException:
            self.store.remove_unreferenced(added)
            raise
        yield Progress("success")

    def import_stream(self, chunks: Iterable[bytes], total: int, name: str, *, expected_digest: str,
                      license_text: str | None = None, license_id: str | None = None,
                      parent: str = "", parameters: Mapping[str, Any] | None = None) -> Iterator[Progress]:
        """Store a GGUF from a byte stream (the embedded default model: :mod:`openzoo.transfers`), then
        validate and tag it."""
        parsed = names.parse(name)
        status = f"pulling {expected_digest[7:19]}"
        yield Progress(status, digest=expected_digest, total=total)
        blob = yield from self._put_with_progress(chunks, total, expected_digest, status)
        yield Progress("verifying sha256 digest")
        info = validate_gguf(self.store.blobs.path(blob.digest))
        yield from self._tag_new(parsed, info, blob.digest, blob.size, license_text=license_text,
                                 license_id=license_id, extra={"parent_model": parent} if parent else None,
                                 parameters=parameters)

    def _put_with_progress(self, chunks: Iterable[bytes], total: int, expected: str | None,
                           status: str = "copying model data") -> Generator[Progress, None, BlobInfo]:
        """Write a blob, yielding byte progress at most every 0.1 s; return its :class:`BlobInfo`."""
        last = 0.0
        with self.store.blobs.writer() as writer:
            for chunk in chunks:
                writer.write(chunk)
                now = time.monotonic()
                if now - last > 0.1:
                    last = now
                    yield Progress(status, digest=expected, total=total, completed=writer.size)
            info = writer.commit(expected)
        yield Progress(status, digest=info.digest, total=total, completed=info.size)
        return info

    def tag_weights(self, name: str, digest: str, *, license_text: str | None = None,
                    license_id: str | None = None,
                    parameters: Mapping[str, Any] | None = None) -> Iterator[Progress]:
        """Tag a GGUF blob already in the store as ``name`` (a pull that finds its weights stored)."""
        info = validate_gguf(self.store.blobs.path(digest))
        yield from self._tag_new(names.parse(name), info, digest, self.store.blobs.size(digest),
                                 license_text=license_text, license_id=license_id, parameters=parameters)

    def _tag_new(self, name: ModelName, info: GGUFInfo, digest: str, size: int, *,
                 license_text: str | None, license_id: str | None,
                 extra: Mapping[str, Any] | None = None,
                 parameters: Mapping[str, Any] | None = None) -> Iterator[Progress]:
        layers = [Layer(mt.MODEL, digest, size)]
        if parameters:  # a Modelfile's PARAMETERs, stored as ``create`` stores them
            layers.append(self._put_text_layer(mt.PARAMS, json.dumps(dict(parameters), sort_keys=True)))
        text = license_text if license_text is not None else info.license
        if text:
            lic = self.store.blobs.put_bytes(text.encode())
            annotations = {"org.openzoo.license.id": license_id} if license_id else {}
            layers.append(Layer(mt.LICENSE, lic.digest, lic.size, annotations))
        config = self._put_json(model_config(info, extra))
        manifest = Manifest(config, tuple(layers))
        yield Progress("writing manifest")
        self.store.tag(name, manifest)
        yield Progress("success")

    def _put_json(self, value: Any) -> Layer:
        blob = self.store.blobs.put_bytes(mt.canonical_json(value))
        return Layer(mt.CONFIG_MEDIA_TYPE, blob.digest, blob.size)

    def _put_text_layer(self, media_type: str, text: str) -> Layer:
        blob = self.store.blobs.put_bytes(text.encode("utf-8"))
        return Layer(media_type, blob.digest, blob.size)

    def create(self, spec: CreateSpec) -> Iterator[Progress]:
        """Create a model from a base plus replaced layers (``openzoo create``, ``POST /api/create``)."""
        target = names.parse(spec.name)
        # Everything that can be refused is checked before the first progress event, so an API
        # caller gets a real 400 instead of an error line in a 200 stream.
        if spec.parameters is not None:
            parse_options(dict(spec.parameters))
        if spec.template is not None:
            ChatTemplate.from_go(spec.template)
        base_manifest: Manifest | None = None
        config: dict[str, Any] | None = None
        weights: Layer | None = None
        sources = [s for s in ([spec.base] if spec.base else []) + list(spec.files.values())]
        if not sources:
            raise InvalidRequest("neither 'from' or 'files' was specified")
        if spec.base and not spec.files:
            base = spec.base
            if names.is_digest(base):
                weights, config = yield from self._weights_from_blob(base)
            elif spec.allow_paths and _looks_like_path(base):
                path = self._local_path(base, spec.base_dir)
                yield Progress("parsing GGUF")
                info = validate_gguf(path)
                blob = self.store.blobs.put_file(path)
                weights, config = Layer(mt.MODEL, blob.digest, blob.size), model_config(info)
                yield Progress(f"using layer {blob.digest}")
            else:
                if _looks_like_path(base):
                    raise InvalidRequest(f'"{base}" looks like a file path; upload it as a blob and pass "files"')
                stored = self.store.resolve(names.parse(base))
                base_manifest = stored.manifest
                config = self._config(base_manifest)
                config["parent_model"] = names.parse(base).display
                yield Progress(f"using existing model {names.parse(base).display}")
        else:
            for filename, digest in spec.files.items():
                if Path(filename).is_absolute() or ".." in Path(filename).parts:
                    raise InvalidRequest(f'invalid file name "{filename}": use a relative name')
                if filename.endswith(".gguf") or len(spec.files) == 1:
                    weights, config = yield from self._weights_from_blob(digest)
            if weights is None:
                raise InvalidRequest("no GGUF file among 'files'")
        layers: list[Layer] = list(base_manifest.layers) if base_manifest else []
        if base_manifest is not None and base_manifest.first(mt.SEAL) is not None:
            layers = self._unsealed_derivative(base_manifest, names.parse(str(spec.base)).display)
        if weights is not None:
            layers = [layer for layer in layers if layer.media_type != mt.MODEL]
            layers.insert(0, weights)
        base_layer = next((layer for layer in layers if layer.media_type == mt.MODEL), None)
        for filename, digest in spec.adapters.items():
            layers.append((yield from self._adapter_layer(filename, digest, base_layer)))
        for adapter in spec.adapter_paths:
            if not spec.allow_paths:
                raise InvalidRequest("adapter paths are only accepted from the command line; upload blobs")
            path = self._local_path(adapter, spec.base_dir)
            digest = self.store.blobs.put_file(path).digest
            layers.append((yield from self._adapter_layer(path.name, digest, base_layer)))
        replacements: list[tuple[str, list[Layer]]] = []
        if spec.template is not None:
            replacements.append((mt.TEMPLATE, [self._put_text_layer(mt.TEMPLATE, spec.template)]))
        if spec.system is not None:
            replacements.append((mt.SYSTEM, [self._put_text_layer(mt.SYSTEM, spec.system)]))
        if spec.parameters:
            merged = dict(json.loads(self._text(base_manifest.first(mt.PARAMS)) or "{}")) if base_manifest else {}
            merged.update(spec.parameters)
            replacements.append((mt.PARAMS, [self._put_text_layer(mt.PARAMS, json.dumps(merged, sort_keys=True))]))
        if spec.license:
            replacements.append((mt.LICENSE, [self._put_text_layer(mt.LICENSE, text) for text in spec.license]))
        if spec.messages:
            replacements.append((mt.MESSAGES, [self._put_text_layer(mt.MESSAGES, json.dumps(list(spec.messages)))]))
        if spec.instruction_tuned is not None:
            config = {**(config or {}), "instruction_tuned": spec.instruction_tuned}
        manifest = Manifest(self._put_json(config or {}), tuple(layers))
        for media_type, new in replacements:
            manifest = manifest.replace_layers(media_type, new)
        yield Progress("writing manifest")
        self.store.tag(target, manifest)
        yield Progress("success")

    def _unsealed_derivative(self, base: Manifest, display: str) -> list[Layer]:
        """The layers a model derived from a sealed one starts with: the base's, without its seal (the seal
        signs the base's manifest, not the new one's: kept, it would make the new model fail ``verify``)
        and with a lineage record naming the sealed source, so certifying the new model can cite it."""
        seal = base.first(mt.SEAL)
        assert seal is not None
        unsealed = base.replace_layers(mt.SEAL, [])
        previous = base.first(mt.LINEAGE)
        record: dict[str, Any] = {
            "schema": "openzoo.lineage/v1", "derivation": "create",
            "base": {"name": display, "manifest_digest": "sha256:" + hashlib.sha256(base.to_bytes()).hexdigest(),
                     "sealed_digest": "sha256:" + hashlib.sha256(unsealed.to_bytes()).hexdigest(),
                     "seal_bundle": seal.digest}}
        if previous is not None:
            record["base"]["lineage"] = previous.digest
        blob = self.store.blobs.put_bytes(mt.canonical_json(record))
        kept = [x for x in unsealed.layers if x.media_type != mt.LINEAGE]
        return [*kept, Layer(mt.LINEAGE, blob.digest, blob.size)]

    @staticmethod
    def _local_path(text: str, base_dir: Path | None) -> Path:
        path = Path(text).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise NotFound(f"no such file: {path}", hint="check the path in the Modelfile")
        return path

    def _weights_from_blob(self, digest: str) -> Generator[Progress, None, tuple[Layer, dict[str, Any]]]:
        digest = names.normalize_digest(digest)
        if not self.store.blobs.exists(digest):
            from openzoo.errors import BlobNotFound
            raise BlobNotFound(f"blob {digest} not found; upload it first")
        yield Progress("parsing GGUF")
        info = validate_gguf(self.store.blobs.path(digest))
        yield Progress(f"using existing layer {digest}")
        return Layer(mt.MODEL, digest, self.store.blobs.size(digest)), model_config(info)

    def _adapter_layer(self, filename: str, digest: str,
                       base: Layer | None = None) -> Generator[Progress, None, Layer]:
        digest = names.normalize_digest(digest)
        if not self.store.blobs.exists(digest):
            from openzoo.errors import BlobNotFound
            raise BlobNotFound(f"adapter blob {digest} ({filename}) not found; upload it first")
        yield Progress(f"parsing adapter {filename}")
        info = validate_gguf(self.store.blobs.path(digest))
        if base is not None:  # type, architecture and shapes must fit the base, or llama.cpp fails at load
            check_adapter(info, validate_gguf(self.store.blobs.path(base.digest)))
        return Layer(mt.ADAPTER, digest, self.store.blobs.size(digest))


def _refuse_dataset(name: ModelName, manifest: Manifest) -> None:
    if manifest.kind == "dataset":
        raise NotSupported(f'"{name.display}" is a dataset, not a model',
                           hint=f"see it with 'openzoo dataset show {name.display}'; fine-tune on it with "
                                f"'openzoo finetune BASE --data {name.display}'")


def _looks_like_path(text: str) -> bool:
    return text.endswith(".gguf") or text.startswith(("/", "./", "../", "~")) or "\\" in text


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def lineage_of(store: Store, manifest: Manifest) -> dict[str, Any] | None:
    """The lineage record a manifest carries, or None (only fine-tuned models have one)."""
    layer = manifest.first(mt.LINEAGE)
    if layer is None:
        return None
    data: dict[str, Any] = json.loads(store.blobs.read(layer.digest))
    return data
