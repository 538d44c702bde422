"""openzoo's own OCI layout (``--format openzoo``): the stored manifest descriptor for descriptor under an
OCI image manifest (:func:`openzoo.registry.oci.artifacts.to_oci`), Ollama's layer types plus openzoo's
(card, lineage, audit, license facts; datasets' config and data). Read back as it is, config included,
after the same content checks as every format.

Also read: any OCI manifest whose layers are all of those types whatever its config (what ``oras push
FILE:application/vnd.ollama.image.model`` makes); its config is then read from the GGUF instead.
"""

from __future__ import annotations

from openzoo.errors import NotSupported
from openzoo.registry.oci.artifacts import OciManifest, to_oci
from openzoo.registry.oci.formats.base import Built, ModelContent, Plan, Take, unknown_layer
from openzoo.store import manifests as mt

__all__ = ["build", "plan", "recognise"]

NAME = "openzoo"
CONFIGS = (mt.CONFIG_MEDIA_TYPE, mt.DATASET_CONFIG)


def recognise(oci: OciManifest) -> bool:
    return oci.config.media_type in CONFIGS or all(x.media_type in mt.LAYER_TYPES for x in oci.layers)


def build(model: ModelContent) -> Built:
    return Built(to_oci(model.manifest), {})


def plan(oci: OciManifest, config_bytes: bytes, where: str) -> Plan:
    """The manifest as it is: every layer of a type openzoo stores, the config kept."""
    takes = []
    for desc in oci.layers:
        if desc.media_type not in mt.LAYER_TYPES or desc.media_type == mt.SEAL:
            raise unknown_layer(where, "openzoo", desc)
        takes.append(Take(desc, desc.media_type, annotations=desc.annotations))
    if oci.config.media_type in CONFIGS:
        return Plan(NAME, tuple(takes), config=oci.config)
    if not any(t.media_type == mt.MODEL for t in takes):
        raise NotSupported(f"{where} has no GGUF weights and no openzoo config", hint="openzoo runs GGUF models")
    return Plan(NAME, tuple(takes))
