"""Ollama's model manifest (ollama/ollama ``server/images.go``, ``types/model/config.go``), written with
``--format ollama`` so that ``ollama pull HOST/NS/MODEL:TAG`` takes a model a zoo published.

A Docker v2 manifest (``application/vnd.docker.distribution.manifest.v2+json``) whose config is
``application/vnd.docker.container.image.v1+json`` as ``ollama create`` writes it (``ConfigV2``:
model_format, model_family, model_families, model_type, file_type, architecture, os; Go's JSON encoder,
so a trailing newline) and whose layers are Ollama's own: ``application/vnd.ollama.image.model``,
``.adapter``, ``.template``, ``.system``, ``.params``, ``.license``, ``.messages`` — the very blobs
openzoo stores under those types, so nothing is converted either way. openzoo's card, lineage, audits
and license facts have no Ollama type and stay out (a sealed model carries them in its seal artifact).

Read: those layer types become the model's own; the projector and anything unknown are refused.
"""

from __future__ import annotations

from openzoo.errors import NotSupported
from openzoo.registry.oci.artifacts import Descriptor, OciManifest
from openzoo.registry.oci.formats.base import Built, ModelContent, Plan, Take, go_json, load_config, unknown_layer
from openzoo.store import manifests as mt

__all__ = ["LAYERS", "build", "plan", "recognise"]

NAME = "ollama"
LAYERS = (mt.MODEL, mt.ADAPTER, mt.TEMPLATE, mt.SYSTEM, mt.PARAMS, mt.LICENSE, mt.MESSAGES)
_REFUSED = {"application/vnd.ollama.image.projector": "a multimodal projector",
            "application/vnd.ollama.image.tensor": "safetensors-style tensors",
            "application/vnd.ollama.image.embed": "an embedding layer"}


def recognise(oci: OciManifest) -> bool:
    return (oci.media_type == mt.MANIFEST_MEDIA_TYPE and oci.config.media_type == mt.CONFIG_MEDIA_TYPE
            and all(x.media_type.startswith("application/vnd.ollama.image.") for x in oci.layers))


def build(model: ModelContent) -> Built:
    """The Ollama manifest and config of ``model``."""
    cfg = model.config
    family = str(cfg.get("model_family") or "")
    config = {"model_format": str(cfg.get("model_format") or "gguf"), "model_family": family,
              "model_families": [str(x) for x in cfg.get("model_families") or ([family] if family else [])],
              "model_type": str(cfg.get("model_type") or ""), "file_type": str(cfg.get("file_type") or ""),
              "architecture": "amd64", "os": "linux"}
    data = go_json(config) + b"\n"  # json.Encoder.Encode ends with a newline
    desc = Descriptor.of(mt.CONFIG_MEDIA_TYPE, data)
    layers = tuple(Descriptor(x.media_type, x.digest, x.size) for x in model.manifest.layers
                   if x.media_type in LAYERS)
    if not any(x.media_type == mt.MODEL for x in layers):
        raise NotSupported(f"{model.name}:{model.tag} has no GGUF weights for Ollama",
                           hint="push it with --format openzoo")
    return Built(OciManifest(desc, layers, mt.MANIFEST_MEDIA_TYPE), {desc.digest: data})


def plan(oci: OciManifest, config_bytes: bytes, where: str) -> Plan:
    """What to land from an Ollama manifest: its layers as they are."""
    config = load_config(config_bytes, where, "Ollama")
    fmt = str(config.get("model_format") or "gguf").lower()
    if fmt != "gguf":
        raise NotSupported(f"{where} is an Ollama model in {fmt} format; openzoo runs GGUF",
                           hint="pull a GGUF model")
    takes: list[Take] = []
    for desc in oci.layers:
        if desc.media_type in _REFUSED:
            raise NotSupported(f"{where} has {_REFUSED[desc.media_type]}; openzoo does not run it yet",
                               hint="pull a text-only GGUF model")
        if desc.media_type not in LAYERS:
            raise unknown_layer(where, "Ollama", desc)
        takes.append(Take(desc, desc.media_type))
    if sum(t.media_type == mt.MODEL for t in takes) != 1:
        raise NotSupported(f"{where} has {sum(t.media_type == mt.MODEL for t in takes)} model layers; openzoo "
                           "lands one GGUF", hint="pull a single-file GGUF model")
    facts = {k: str(config[k]) for k in ("model_family", "model_type", "file_type") if config.get(k)}
    return Plan(NAME, tuple(takes), (), facts)
