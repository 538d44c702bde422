"""CycloneDX 1.6 ML-BOM for a model, built as JSON (the library has no modelCard model yet) and validated
against the 1.6 schema with ``cyclonedx-python-lib``'s strict JSON validator."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from openzoo import __version__, names
from openzoo.errors import InvalidData, NotSupported
from openzoo.store import manifests as mt

if TYPE_CHECKING:
    from openzoo.certify.service import Certification

__all__ = ["build_bom", "validate_bom"]


def _license(facts_id: str, name: str, url: str) -> dict[str, Any]:
    if facts_id.startswith("LicenseRef-"):
        lic: dict[str, Any] = {"name": name}
    else:
        lic = {"id": facts_id}
    if url:
        lic["url"] = url
    return {"license": lic}


def build_bom(cert: Certification, model: str) -> dict[str, Any]:
    """The ML-BOM of ``model``: component (machine-learning-model) with hashes, licenses and a modelCard."""
    parsed = names.parse(model)
    stored = cert.store.resolve(parsed)
    manifest = stored.manifest
    if manifest.kind == "dataset":
        raise NotSupported(f'"{parsed.display}" is a dataset; ML-BOMs are made for models only',
                           hint=f"see the dataset with 'openzoo dataset show {parsed.display} --json'")
    card = cert.ensure_card(model)
    stored = cert.store.resolve(parsed)
    manifest = stored.manifest
    facts = cert.license_facts(model)
    openness = cert.openness(model)
    config = json.loads(cert.store.blobs.read(manifest.config.digest))
    weights = manifest.first(mt.MODEL)
    hashes = [{"alg": "SHA-256", "content": weights.digest.removeprefix("sha256:")}] if weights else []
    props = [
        {"name": "openzoo:manifestDigest", "value": stored.digest},
        {"name": "openzoo:mofClass", "value": openness.class_name},
        {"name": "openzoo:license", "value": facts.id},
    ]
    seal = manifest.first(mt.SEAL)
    if seal is not None:
        props.append({"name": "openzoo:sealDigest", "value": seal.digest})
    metrics: list[dict[str, Any]] = []
    for layer in manifest.layers_of(mt.AUDIT):
        try:
            report = json.loads(cert.store.blobs.read(layer.digest))
        except ValueError:
            continue
        for key, value in (report.get("metrics") or {}).items() if isinstance(report, dict) else []:
            if isinstance(value, int | float | str):
                metrics.append({"type": str(key), "value": str(value)})
    model_card: dict[str, Any] = {
        "modelParameters": {
            "task": str(card.metadata.get("pipeline_tag") or "text-generation"),
            "architectureFamily": str(config.get("model_family") or config.get("architecture") or ""),
            "modelArchitecture": str(config.get("architecture") or ""),
            "datasets": [{"ref": f"dataset-{i}"} for i, _ in enumerate(card.metadata.get("datasets") or [])],
        },
        "considerations": {
            "useCases": ["text generation"],
            "technicalLimitations": [f"openness: {openness.class_name}"],
            "ethicalConsiderations": [{"name": "license", "mitigationStrategy": facts.use_restrictions or "none"}],
        },
        "properties": [{"name": "openzoo:cardDigest", "value": card.digest()}],
    }
    if not model_card["modelParameters"]["datasets"]:
        del model_card["modelParameters"]["datasets"]
    if metrics:
        model_card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": f"model:{parsed.display}",
        "name": parsed.model,
        "version": parsed.tag,
        "group": parsed.namespace,
        "description": f"{parsed.display} ({config.get('model_type', '')} {config.get('file_type', '')})".strip(),
        "hashes": hashes,
        "licenses": [_license(facts.id, facts.name, facts.url)],
        "properties": props,
        "modelCard": model_card,
    }
    bases = card.metadata.get("base_model") or []
    if bases:
        component["pedigree"] = {"ancestors": [{"type": "machine-learning-model", "name": str(b),
                                                "bom-ref": f"base:{b}"} for b in bases]}
    bom: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tools": {"components": [{"type": "application", "name": "openzoo", "version": __version__}]},
            "component": component,
        },
        "components": [],
    }
    validate_bom(bom)
    return bom


def validate_bom(bom: dict[str, Any]) -> None:
    """Validate against the CycloneDX 1.6 JSON schema; InvalidData naming the problem otherwise."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    if error is not None:
        raise InvalidData(f"the ML-BOM does not validate against CycloneDX 1.6: {error}")
