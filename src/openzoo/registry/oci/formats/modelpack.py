"""CNCF ModelPack (modelpack/model-spec v1): the vendor-neutral model artifact Docker Model Runner,
KitOps ≥ 1.10, modctl and CRI-O read — openzoo's default for ``openzoo push``.

Written as Docker Model Runner's ``builder`` writes its ``cncf`` format: an OCI image manifest with
``artifactType`` ``application/vnd.cncf.model.manifest.v1+json``; the config
(``application/vnd.cncf.model.config.v1+json``) with ``descriptor`` (name, version, family, SPDX
licenses, authors, createdAt, sourceURL…), ``modelfs`` (``diffIds``: a raw layer's diff id is its
digest) and ``config`` (architecture, ``format: "gguf"``, paramSize, quantization, capabilities), valid
against the spec's ``schema/config-schema.json`` (``additionalProperties: false`` everywhere, so nothing
of openzoo's goes in it); each file one raw layer annotated with ``org.cncf.model.filepath`` and
``org.cncf.model.file.metadata+json``. The GGUF is a ``weight.v1.raw`` layer, the card and license
``doc.v1.raw``, Ollama's template/system/params ``weight.config.v1.raw`` under ``ollama/``, openzoo's
license facts, lineage and audits ``doc.v1.raw`` under ``.openzoo/``, a dataset's files ``dataset.v1.raw``.

Read: the same, plus modctl's ``.tar`` (and ``+gzip``) layers — one file per archive — and the typed
``weight.v1.gguf`` model-runner once wrote. Code and weight-config files openzoo has no use for are left
out (and said so); safetensors weights and unknown media types are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from openzoo.errors import NotSupported
from openzoo.facts.licenses import UNKNOWN_ID, lookup
from openzoo.registry.oci.artifacts import OCI_MANIFEST, Descriptor, OciManifest
from openzoo.registry.oci.formats.base import (
    Built,
    ModelContent,
    Plan,
    Take,
    bad_config,
    go_json,
    go_time,
    load_config,
    unknown_layer,
)
from openzoo.store import manifests as mt

__all__ = ["ARTIFACT_TYPE", "CONFIG", "build", "plan", "recognise"]

NAME = "modelpack"
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG = "application/vnd.cncf.model.config.v1+json"
PREFIX = "application/vnd.cncf.model."
WEIGHT_RAW = PREFIX + "weight.v1.raw"
WEIGHT_GGUF = PREFIX + "weight.v1.gguf"  # the typed form Docker Model Runner wrote before v1 settled on .raw
WEIGHT_CONFIG_RAW = PREFIX + "weight.config.v1.raw"
DOC_RAW = PREFIX + "doc.v1.raw"
DATASET_RAW = PREFIX + "dataset.v1.raw"
FILEPATH = "org.cncf.model.filepath"
FILE_METADATA = "org.cncf.model.file.metadata+json"
UNTESTED = "org.cncf.model.file.mediatype.untested"
KINDS = ("weight", "weight.config", "doc", "code", "dataset")
ARCHIVES = ("raw", "tar", "tar+gzip", "tar+zstd")

# openzoo layer type -> (ModelPack media type, file path); MODEL, ADAPTER, LICENSE, data get their own
_FILES: dict[str, tuple[str, str]] = {
    mt.CARD: (DOC_RAW, "README.md"),
    mt.DATASHEET: (DOC_RAW, "README.md"),
    mt.TEMPLATE: (WEIGHT_CONFIG_RAW, "ollama/template"),
    mt.SYSTEM: (WEIGHT_CONFIG_RAW, "ollama/system"),
    mt.PARAMS: (WEIGHT_CONFIG_RAW, "ollama/params.json"),
    mt.MESSAGES: (WEIGHT_CONFIG_RAW, "ollama/messages.json"),
    mt.LICENSE_FACTS: (DOC_RAW, ".openzoo/license-facts.json"),
    mt.LINEAGE: (DOC_RAW, ".openzoo/lineage.json"),
}
_BY_PATH = {path: media_type for media_type, (_, path) in _FILES.items() if media_type != mt.DATASHEET}


def recognise(oci: OciManifest) -> bool:
    return oci.artifact_type == ARTIFACT_TYPE or oci.config.media_type == CONFIG


# -- writing ---------------------------------------------------------------------------------------------


def _path(layer: mt.Layer, index: dict[str, int], model: ModelContent) -> tuple[str, str]:
    """The ModelPack media type and file path of one openzoo layer."""
    kind = layer.media_type
    count = index.get(kind, 0)
    index[kind] = count + 1
    suffix = f"-{count}" if count else ""
    if kind == mt.MODEL:
        return WEIGHT_RAW, f"{model.name}{suffix}.gguf"
    if kind == mt.ADAPTER:
        return WEIGHT_RAW, f"adapters/adapter{suffix}.gguf"
    if kind == mt.LICENSE:
        return DOC_RAW, f"LICENSE{suffix}"
    if kind == mt.AUDIT:
        return DOC_RAW, f".openzoo/audit{suffix}.json"
    if kind in mt.DATA_TYPES.values():
        return DATASET_RAW, "data/" + (layer.annotations.get("org.openzoo.filename") or layer.digest[7:19])
    if kind in _FILES:
        media_type, path = _FILES[kind]
        return media_type, path if not count else f"{path}{suffix}"
    raise NotSupported(f"{model.name}:{model.tag} has a {kind} layer that ModelPack has no place for",
                       hint="push it with --format openzoo")


def _metadata(path: str, size: int, model: ModelContent) -> str:
    """``org.cncf.model.file.metadata+json`` as Docker Model Runner writes it (a regular file, mode 0644)."""
    return go_json({"name": PurePosixPath(path).name, "mode": 0o644, "uid": 0, "gid": 0, "size": size,
                    "mtime": go_time(model.created), "typeflag": 0}).decode()


def licenses(model: ModelContent) -> list[str]:
    """SPDX ids (or LicenseRef-…) of the model's license, from the license layer, the config or the card."""
    ids = [x.annotations.get("org.openzoo.license.id") for x in model.manifest.layers_of(mt.LICENSE)]
    found = [lookup(x).id for x in ids if x]
    if not found and model.license_id:
        found = [lookup(model.license_id).id]
    return [x for x in dict.fromkeys(found) if x and x != UNKNOWN_ID]


def config_json(model: ModelContent, diff_ids: list[str]) -> dict[str, Any]:
    """The ModelPack config of a stored model (schema-valid: only the spec's fields)."""
    cfg = model.config
    descriptor: dict[str, Any] = {"createdAt": go_time(model.created)}
    authors = [str(x) for x in cfg.get("authors") or () if str(x)]
    if authors:
        descriptor["authors"] = authors
    if cfg.get("model_family"):
        descriptor["family"] = str(cfg["model_family"])
    descriptor["name"] = model.name
    if cfg.get("source_url"):
        descriptor["sourceURL"] = str(cfg["source_url"])
    descriptor["version"] = model.tag
    found = licenses(model)
    if found:
        descriptor["licenses"] = found
    if cfg.get("description"):
        descriptor["description"] = str(cfg["description"])
    config: dict[str, Any] = {}
    if cfg.get("architecture"):
        config["architecture"] = str(cfg["architecture"])
    if model.manifest.kind == "model":
        config["format"] = str(cfg.get("model_format") or "gguf")
    if cfg.get("model_type"):
        config["paramSize"] = str(cfg["model_type"])
    if cfg.get("file_type"):
        config["quantization"] = str(cfg["file_type"])
    if model.manifest.kind == "model":
        outputs = ["text", "embedding"] if "embedding" in (cfg.get("capabilities") or ()) else ["text"]
        config["capabilities"] = {"inputTypes": ["text"], "outputTypes": outputs}
    return {"descriptor": descriptor, "modelfs": {"type": "layers", "diffIds": diff_ids}, "config": config}


def build(model: ModelContent) -> Built:
    """The ModelPack manifest and config of ``model``."""
    index: dict[str, int] = {}
    layers: list[Descriptor] = []
    for layer in model.manifest.layers:
        media_type, path = _path(layer, index, model)
        annotations = {FILEPATH: path, FILE_METADATA: _metadata(path, layer.size, model), UNTESTED: "false"}
        layers.append(Descriptor(media_type, layer.digest, layer.size, annotations))
    data = go_json(config_json(model, [x.digest for x in layers]))
    config = Descriptor.of(CONFIG, data)
    return Built(OciManifest(config, tuple(layers), OCI_MANIFEST, ARTIFACT_TYPE), {config.digest: data})


# -- reading ---------------------------------------------------------------------------------------------


def _split(media_type: str) -> tuple[str, str] | None:
    """``(kind, archive)`` of a ModelPack layer type (``("weight", "raw")``), None for anything else."""
    if not media_type.startswith(PREFIX):
        return None
    rest = media_type[len(PREFIX):]
    for kind in sorted(KINDS, key=len, reverse=True):
        head = kind + ".v1."
        if rest.startswith(head) and rest[len(head):] in ARCHIVES:
            return kind, rest[len(head):]
    return None


def _facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """Card facts from the descriptor: name, version, licenses, authors, description, source."""
    desc = config.get("descriptor") or {}
    facts: dict[str, Any] = {}
    for key in ("name", "version", "family", "description", "sourceURL", "docURL", "vendor", "title"):
        if isinstance(desc.get(key), str) and desc[key]:
            facts[key] = desc[key]
    for key in ("licenses", "authors", "datasetsURL"):
        if isinstance(desc.get(key), list):
            facts[key] = [str(x) for x in desc[key] if isinstance(x, str)]
    if facts.get("licenses"):
        facts["license_id"] = facts["licenses"][0]
    return facts


def _check(config: Any, where: str) -> dict[str, Any]:
    """The shape model-runner and KitOps rely on: objects where the spec has objects, strings where strings."""
    if not isinstance(config, dict):
        raise bad_config(where, "ModelPack", "not a JSON object")
    for key in ("descriptor", "config", "modelfs"):
        if key in config and not isinstance(config[key], dict):
            raise bad_config(where, "ModelPack", f"{key} is not an object")
    fs = config.get("modelfs") or {}
    if "diffIds" in fs and (not isinstance(fs["diffIds"], list) or
                            not all(isinstance(x, str) for x in fs["diffIds"])):
        raise bad_config(where, "ModelPack", "modelfs.diffIds is not a list of digests")
    fmt = (config.get("config") or {}).get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise bad_config(where, "ModelPack", "config.format is not a string")
    return config


def plan(oci: OciManifest, config_bytes: bytes, where: str) -> Plan:
    """What to land from a ModelPack manifest and config."""
    config = _check(load_config(config_bytes, where, "ModelPack"), where)
    declared = str((config.get("config") or {}).get("format") or "").lower()
    if declared and declared != "gguf":
        raise NotSupported(f"{where} is a ModelPack model in {declared} format; openzoo runs GGUF",
                           hint="convert it to GGUF (openzoo import DIR reads safetensors folders)")
    takes: list[Take] = []
    skipped: list[str] = []
    for desc in oci.layers:
        split = _split(desc.media_type) if desc.media_type != WEIGHT_GGUF else ("weight", "raw")
        if split is None:
            raise unknown_layer(where, "ModelPack", desc)
        kind, archive = split
        path = desc.annotations.get(FILEPATH, "")
        if archive == "tar+zstd":
            raise NotSupported(f"{where}: layer {desc.digest[:19]}… is a zstd tar; openzoo reads raw, tar and "
                               "gzip tar layers", hint="ask the publisher for an uncompressed layer")
        member = path if archive != "raw" else None
        name = PurePosixPath(path).name.lower()
        if kind == "weight":
            if name.endswith((".safetensors", ".bin", ".pt", ".dduf")):
                raise NotSupported(f"{where} holds {name} weights; openzoo runs GGUF",
                                   hint="convert it to GGUF (openzoo import DIR reads safetensors folders)")
            role = mt.ADAPTER if path.startswith("adapters/") else mt.MODEL
            takes.append(Take(desc, role, member))
        elif kind in ("weight.config", "doc") and path in _BY_PATH:
            takes.append(Take(desc, _BY_PATH[path], member))
        elif kind == "doc" and name == "readme.md":
            takes.append(Take(desc, mt.CARD, member))
        elif kind == "doc" and (name.startswith(("license", "licence", "copying"))):
            takes.append(Take(desc, mt.LICENSE, member))
        elif kind == "doc" and path.startswith(".openzoo/audit"):
            takes.append(Take(desc, mt.AUDIT, member))
        else:
            skipped.append(f"{kind} file {path or desc.digest[:19]}")
    if not any(t.media_type == mt.MODEL for t in takes):
        raise NotSupported(f"{where} is a ModelPack artifact without GGUF weights", hint="openzoo runs GGUF models")
    return Plan(NAME, tuple(takes), tuple(skipped), _facts(config))

