"""Docker Model Runner's own format (``docker model package``; docker/model-runner
``pkg/distribution/types/config.go``), written with ``--format docker``.

An OCI image manifest whose config is ``application/vnd.docker.ai.model.config.v0.2+json`` — ``config``
(format, quantization, parameters, architecture, size, context_size), ``descriptor`` (created) and
``rootfs`` (``{"type": "rootfs", "diff_ids": [...]}``), in model-runner's field order — and one layer per
file with ``org.cncf.model.filepath``: the GGUF as ``application/vnd.docker.ai.gguf.v3`` (which
llama.cpp's ``-dr`` also finds), the license as ``application/vnd.docker.ai.license``, the card as a
generic ``application/vnd.docker.ai.model.file``. Docker's format has no place for Ollama's template,
system prompt or parameters; they travel only in ``--format ollama``/``modelpack``/``openzoo``.

Read: config v0.1 or v0.2 (model-runner refuses other versions, and so does openzoo), GGUF and license
layers landed, its Jinja chat template, multimodal projector and other files left out (said so).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from openzoo.errors import NotSupported
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

__all__ = ["CONFIG_V01", "CONFIG_V02", "GGUF", "LICENSE", "build", "plan", "recognise"]

NAME = "docker"
CONFIG_PREFIX = "application/vnd.docker.ai.model.config."
CONFIG_V01 = CONFIG_PREFIX + "v0.1+json"
CONFIG_V02 = CONFIG_PREFIX + "v0.2+json"
GGUF = "application/vnd.docker.ai.gguf.v3"
LICENSE = "application/vnd.docker.ai.license"
MODEL_FILE = "application/vnd.docker.ai.model.file"
CHAT_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
FILEPATH = "org.cncf.model.filepath"
_LEFT_OUT = {
    CHAT_TEMPLATE: "Jinja chat template (the GGUF carries its own)",
    "application/vnd.docker.ai.mmproj": "multimodal projector",
    "application/vnd.docker.ai.safetensors": "safetensors weights",
    "application/vnd.docker.ai.vllm.config.tar": "vLLM config archive",
    "application/vnd.docker.ai.dir.tar": "directory archive",
    "application/vnd.docker.ai.dduf": "DDUF weights",
}


def recognise(oci: OciManifest) -> bool:
    return oci.config.media_type.startswith(CONFIG_PREFIX)


def build(model: ModelContent) -> Built:
    """The Docker Model Runner manifest and config (v0.2) of ``model``."""
    cfg = model.config
    layers: list[Descriptor] = []
    for layer in model.manifest.layers:
        if layer.media_type == mt.MODEL and not any(x.media_type == GGUF for x in layers):
            layers.append(Descriptor(GGUF, layer.digest, layer.size, {FILEPATH: f"{model.name}.gguf"}))
        elif layer.media_type == mt.LICENSE:
            count = sum(x.media_type == LICENSE for x in layers)
            path = f"LICENSE-{count}" if count else "LICENSE"
            layers.append(Descriptor(LICENSE, layer.digest, layer.size, {FILEPATH: path}))
        elif layer.media_type == mt.CARD:
            layers.append(Descriptor(MODEL_FILE, layer.digest, layer.size, {FILEPATH: "README.md"}))
    if not any(x.media_type == GGUF for x in layers):
        raise NotSupported(f"{model.name}:{model.tag} has no GGUF weights for Docker Model Runner",
                           hint="push it with --format openzoo")
    inner: dict[str, object] = {"format": "gguf"}
    if cfg.get("file_type"):
        inner["quantization"] = str(cfg["file_type"])
    if cfg.get("model_type"):
        inner["parameters"] = str(cfg["model_type"])
    if cfg.get("architecture"):
        inner["architecture"] = str(cfg["architecture"])
    weights = next(x for x in layers if x.media_type == GGUF)
    inner["size"] = f"{weights.size / 2 ** 20:.2f} MiB"
    context = cfg.get("context_length")
    if isinstance(context, int) and 0 < context < 2 ** 31:
        inner["context_size"] = context
    config = {"config": inner, "descriptor": {"created": go_time(model.created)},
              "rootfs": {"type": "rootfs", "diff_ids": [x.digest for x in layers]}}
    data = go_json(config)
    desc = Descriptor.of(CONFIG_V02, data)
    return Built(OciManifest(desc, tuple(layers), OCI_MANIFEST), {desc.digest: data})


def plan(oci: OciManifest, config_bytes: bytes, where: str) -> Plan:
    """What to land from a Docker Model Runner manifest."""
    if oci.config.media_type not in (CONFIG_V01, CONFIG_V02):
        raise NotSupported(f"{where} has Docker model config {oci.config.media_type!r}; openzoo reads v0.1 and "
                           "v0.2", hint="repackage it with a current 'docker model package'")
    config = load_config(config_bytes, where, "Docker model")
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise bad_config(where, "Docker model", "config is not an object")
    fmt = str(inner.get("format") or "gguf").lower()
    if fmt != "gguf":
        raise NotSupported(f"{where} is a Docker model in {fmt} format; openzoo runs GGUF",
                           hint="package the GGUF file with 'docker model package --gguf'")
    takes: list[Take] = []
    skipped: list[str] = []
    for desc in oci.layers:
        name = PurePosixPath(desc.annotations.get(FILEPATH, "")).name or desc.digest[:19]
        if desc.media_type == GGUF:
            if any(t.media_type == mt.MODEL for t in takes):
                raise NotSupported(f"{where} is a sharded GGUF (several weight layers); openzoo lands one GGUF "
                                   "file", hint="merge the shards with llama-gguf-split --merge")
            takes.append(Take(desc, mt.MODEL))
        elif desc.media_type == LICENSE:
            takes.append(Take(desc, mt.LICENSE))
        elif desc.media_type == MODEL_FILE and name.lower() == "readme.md":
            takes.append(Take(desc, mt.CARD))
        elif desc.media_type in _LEFT_OUT or desc.media_type == MODEL_FILE:
            skipped.append(f"{_LEFT_OUT.get(desc.media_type, 'file')} {name}")
        else:
            raise unknown_layer(where, "Docker model", desc)
    if not any(t.media_type == mt.MODEL for t in takes):
        raise NotSupported(f"{where} is a Docker model without a GGUF layer", hint="openzoo runs GGUF models")
    facts = {k: str(inner[k]) for k in ("architecture", "parameters", "quantization") if inner.get(k)}
    return Plan(NAME, tuple(takes), tuple(skipped), facts)
