"""The model artifact formats openzoo writes and reads on OCI registries, one pure module each.

``openzoo push NAME oci://… --format F`` builds the manifest and config of format F from the stored model
(:func:`build`); ``openzoo pull`` recognises the format of whatever manifest it finds (:func:`recognise`)
and asks that format's module for a :class:`~.base.Plan` of what to land. Written: ModelPack (the
default), Docker Model Runner, Ollama, openzoo. Read: those and KitOps ModelKits.

Whatever the format, a sealed model's seal, card and proof are referrer artifacts of the pushed manifest,
and the seal artifact carries the openzoo manifest the seal signs (see :mod:`openzoo.registry.oci.push`),
so one seal verifies in every format.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from openzoo.errors import InvalidRequest, NotSupported
from openzoo.registry.oci.artifacts import OciManifest
from openzoo.registry.oci.formats import docker, kitops, modelpack, ollama, openzoo
from openzoo.registry.oci.formats.base import Built, ModelContent, Plan, Take

__all__ = ["DEFAULT", "WRITTEN", "Built", "ModelContent", "Plan", "Take", "build", "plan", "recognise"]

DEFAULT = "modelpack"
WRITTEN: dict[str, Callable[[ModelContent], Built]] = {
    "modelpack": modelpack.build, "docker": docker.build, "ollama": ollama.build, "openzoo": openzoo.build}
_READ: tuple[tuple[str, ModuleType], ...] = (
    ("modelpack", modelpack), ("docker", docker), ("kitops", kitops), ("ollama", ollama), ("openzoo", openzoo))


def build(fmt: str, model: ModelContent) -> Built:
    """``model`` in format ``fmt`` (one of :data:`WRITTEN`)."""
    writer = WRITTEN.get(fmt)
    if writer is None:
        raise InvalidRequest(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(WRITTEN)}")
    return writer(model)


def recognise(oci: OciManifest, where: str) -> str:
    """The format of a model manifest, or a clear refusal naming its config media type."""
    for name, module in _READ:
        if module.recognise(oci):
            return name
    raise NotSupported(f"{where} is not a model artifact openzoo reads (config {oci.config.media_type!r}, "
                       f"artifactType {oci.artifact_type!r}): refused, nothing stored",
                       hint="openzoo reads ModelPack, Docker Model Runner, Ollama, KitOps and openzoo artifacts")


def plan(fmt: str, oci: OciManifest, config: bytes, where: str) -> Plan:
    """What to land from a manifest of format ``fmt`` and its config blob."""
    module = dict(_READ)[fmt]
    result: Plan = module.plan(oci, config, where)
    return result
