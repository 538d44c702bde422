"""What the web catalog shows about datasets: a row per dataset and a dataset's page.

Built from the same domain calls as ``openzoo dataset list|show|card`` and ``openzoo verify`` (the page
verifies the dataset now: file digests, seal, quorum, log inclusion, revocation), like the model pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from openzoo.datasets.service import StoredDataset
from openzoo.errors import OpenzooError
from openzoo.facts import licenses
from openzoo.facts.card import render_html
from openzoo.facts.licenses import LicenseFacts
from openzoo.services import Services
from openzoo.web import trust
from openzoo.web.catalog import SealStatus
from openzoo.web.facts import demote_headings


@dataclass(frozen=True, slots=True)
class DatasetRow:
    name: str
    rows: int
    format: str
    size: int
    license_id: str
    license_name: str
    license_kind: str
    seal: SealStatus
    data_digest: str
    modified_at: float


def dataset_rows(services: Services) -> list[DatasetRow]:
    """One row per stored dataset, by name (a dataset whose seal cannot be read shows "none")."""
    out = []
    for found in services.datasets.list_datasets():
        facts = found.license
        try:
            seal, _ = trust.catalog_status(services, found)
        except OpenzooError:
            seal = "none"
        out.append(DatasetRow(found.display, found.config.rows, found.config.format, found.config.size,
                              found.config.license or facts.id, facts.name, facts.category, seal,
                              found.config.data_digest, found.modified_at))
    return sorted(out, key=lambda r: r.name.lower())


@dataclass(frozen=True, slots=True)
class DatasetPage:
    found: StoredDataset
    license: LicenseFacts
    license_summary: str
    trust: trust.ModelTrust
    datasheet_html: str
    problems: tuple[str, ...]


def dataset_page_data(services: Services, name: str) -> DatasetPage:
    """Everything a dataset's page shows; the dataset is verified now."""
    found = services.datasets.get(name)
    cert = trust.service(services)
    card = services.datasets.datasheet(found.display)
    try:
        html = demote_headings(render_html(card.body))
    except ImportError:  # no sanitizer installed: show nothing rather than unsanitized HTML
        html = ""
    return DatasetPage(found, found.license, licenses.describe(found.license),
                       trust.certification_view(services, found), html,
                       tuple(cert.card_problems(found.display, card)))
