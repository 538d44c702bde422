"""Certification evidence for datasets: the datasheet, the data license, MOF components and the data scan.

Why a module of its own: :mod:`openzoo.certify.evidence` answers the same questions for every manifest
(card, license facts, openness, scan) and turns here when the manifest is a dataset's, so requests,
approvals, seals and verification run one flow for both kinds.

* card: the datasheet layer (a Hugging Face dataset card); its problems are the Datasheets-for-Datasets
  questions left unanswered and a license that is unknown or not an open data license;
* license facts: the license in the dataset's config (as imported);
* openness: the MOF components a dataset supplies, ``Datasets`` (the data files' digests) and
  ``Data card`` (the datasheet, once every question is answered), graded under the data license;
* scan: every data file parses as its format and holds no executable content.
"""

from __future__ import annotations

from pathlib import Path

from openzoo.certify.openness import ComponentEvidence, OpennessReport, grade
from openzoo.facts import datasheet as sheets
from openzoo.facts.card import ModelCard
from openzoo.facts.datafiles import FileFacts, inspect_file
from openzoo.facts.dataset_config import fit_datasheet, read_config
from openzoo.facts.licenses import UNKNOWN, LicenseFacts, lookup
from openzoo.formats.scan import ScanReport, scan_data_file
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

__all__ = ["draft", "fit", "license_facts", "openness", "problems", "scan"]


def license_facts(store: Store, manifest: Manifest) -> LicenseFacts:
    config = read_config(store, manifest)
    return lookup(config.license) if config.license else UNKNOWN


def draft(store: Store, display: str, manifest: Manifest) -> ModelCard:
    """The datasheet a dataset without one would get (every import stores one, so this is rare)."""
    config = read_config(store, manifest)
    return sheets.draft(display, config.files, license_facts(store, manifest))


def fit(store: Store, display: str, manifest: Manifest, card: ModelCard) -> ModelCard:
    return fit_datasheet(card, display, read_config(store, manifest))


def problems(card: ModelCard, facts: LicenseFacts) -> list[str]:
    return sheets.problems(card, facts)


def openness(store: Store, manifest: Manifest, card: ModelCard | None) -> OpennessReport:
    facts = license_facts(store, manifest)
    given = [ComponentEvidence("Datasets", "present", facts.id, tuple(x.digest for x in manifest.data_layers()))]
    sheet = manifest.first(mt.DATASHEET)
    if card is not None and sheet is not None and all(sheets.answered(card).values()):
        given.append(ComponentEvidence("Data card", "present", facts.id, (sheet.digest,)))
    return grade(given, distribution_license=facts.id, data_license=facts.id)


def scan(store: Store, manifest: Manifest) -> ScanReport:
    config = read_config(store, manifest)
    findings = []
    for facts in config.files:
        path = store.blobs.path(facts.digest)

        def columns(path: Path = path, facts: FileFacts = facts) -> list[tuple[str, str]]:
            return [(c.name, c.type) for c in inspect_file(path, facts.format, facts.name).columns]

        findings += scan_data_file(path, facts.name, columns)
    return ScanReport(tuple(f.name for f in config.files), tuple(findings))
