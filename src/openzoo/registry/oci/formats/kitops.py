"""KitOps ModelKits (kitops-ml/kitops ``pkg/lib/constants/mediaType.go``, ``pkg/artifact/kitfile.go``): read
only — openzoo writes ModelPack, which KitOps ≥ 1.10 reads.

A ModelKit's config is its Kitfile as JSON (``application/vnd.kitops.modelkit.config.v1+json``:
``package`` name/version/license/authors/description, ``model`` path/license, ``docs``, ``datasets``,
``code``); each entry travels as a tar layer ``application/vnd.kitops.modelkit.<kind>.v1.tar[+gzip]``
whose member paths are the Kitfile paths. openzoo takes the ``model`` layer's GGUF (the Kitfile's model
path, or the one ``.gguf`` inside it), after checking every member of the archive; model parts, code,
datasets and docs are left out and said so.
"""

from __future__ import annotations

import re

from openzoo.errors import NotSupported
from openzoo.registry.oci.artifacts import OciManifest
from openzoo.registry.oci.formats.base import Plan, Take, bad_config, load_config, unknown_layer
from openzoo.store import manifests as mt

__all__ = ["CONFIG", "plan", "recognise"]

NAME = "kitops"
CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
ARTIFACT_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"
_LAYER = re.compile(r"application/vnd\.kitops\.modelkit\.(model|modelpart|dataset|code|docs)\.v1\.tar(\+gzip|\+zstd)?")


def recognise(oci: OciManifest) -> bool:
    return oci.config.media_type == CONFIG or oci.artifact_type == ARTIFACT_TYPE


def plan(oci: OciManifest, config_bytes: bytes, where: str) -> Plan:
    """What to land from a ModelKit: its model layer's GGUF, with the Kitfile's package facts."""
    kitfile = load_config(config_bytes, where, "Kitfile")
    model = kitfile.get("model")
    package = kitfile.get("package") or {}
    if not isinstance(model, dict) or not isinstance(model.get("path"), str) or not model["path"]:
        raise bad_config(where, "Kitfile", "it names no model path")
    if not isinstance(package, dict):
        raise bad_config(where, "Kitfile", "package is not an object")
    takes: list[Take] = []
    skipped: list[str] = []
    for desc in oci.layers:
        match = _LAYER.fullmatch(desc.media_type)
        if match is None:
            raise unknown_layer(where, "ModelKit", desc)
        kind, compression = match.group(1), match.group(2)
        if kind != "model":
            skipped.append(f"{kind} layer {desc.digest[:19]}…")
            continue
        if compression == "+zstd":
            raise NotSupported(f"{where}: the model layer is a zstd tar; openzoo reads tar and gzip tar",
                               hint="pack the ModelKit with --compression none or gzip")
        if takes:
            raise NotSupported(f"{where} has several model layers", hint="openzoo lands one GGUF file")
        takes.append(Take(desc, mt.MODEL, str(model["path"])))
    if not takes:
        raise NotSupported(f"{where} is a ModelKit without a model layer", hint="openzoo runs GGUF models")
    facts: dict[str, object] = {k: str(package[k]) for k in ("name", "version", "description") if package.get(k)}
    license_id = package.get("license") or model.get("license")
    if isinstance(license_id, str) and license_id:
        facts["license_id"] = license_id
        facts["licenses"] = [license_id]
    if isinstance(package.get("authors"), list):
        facts["authors"] = [str(x) for x in package["authors"]]
    return Plan(NAME, tuple(takes), tuple(skipped), facts)
