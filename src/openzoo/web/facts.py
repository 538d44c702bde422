"""Facts about one model for the pages, gathered through the domain layer.

Each function here calls the same domain code the API and CLI use (``Models.resolve``, ``show``,
``certify.*``, ``audit.report``) and turns the result into small view objects the templates render.
Where a piece of data does not exist yet (no seal, no audit, no log), the view says so instead of
inventing it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from openzoo.certify import licenses
from openzoo.certify.card import ModelCard, card_from_metadata, parse_card, render_html
from openzoo.certify.licenses import LicenseFacts
from openzoo.certify.openness import COMPONENTS, grade
from openzoo.certify.scan import SEVERITIES, Finding, scan_file
from openzoo.errors import OpenzooError
from openzoo.models import ModelSpec
from openzoo.services import Services
from openzoo.show import license_id
from openzoo.store import manifests as mt
from openzoo.store.blobs import BlobStore
from openzoo.store.manifests import Manifest

LAYER_LABELS = {
    mt.MODEL: "weights", mt.TEMPLATE: "template", mt.SYSTEM: "system prompt", mt.PARAMS: "parameters",
    mt.LICENSE: "license", mt.MESSAGES: "messages", mt.ADAPTER: "adapter", mt.CARD: "model card",
    mt.LINEAGE: "lineage", mt.AUDIT: "audit report", mt.SEAL: "seal", mt.LICENSE_FACTS: "license facts",
    mt.CONFIG_MEDIA_TYPE: "config",
}


# --- files ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One layer's blob re-hashed at view time."""

    label: str
    digest: str
    size: int
    ok: bool
    detail: str


class DigestCache:
    """Digests of blob files keyed by their identity on disk (inode, size, mtime).

    Any write to a file changes its mtime, so a cached digest is reused only for an untouched file:
    pages can verify a model's every blob on each view without re-reading gigabytes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int, int, int], str] = {}

    def digest(self, blobs: BlobStore, digest: str) -> str:
        stat = os.stat(blobs.path(digest))
        key = (digest, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        actual = blobs.hash_file(digest)
        with self._lock:
            self._known[key] = actual
        return actual


def check_files(blobs: BlobStore, manifest: Manifest, cache: DigestCache) -> list[FileCheck]:
    """Re-hash the config and every layer of ``manifest`` (cached while files are untouched)."""
    checks = []
    for layer in (manifest.config, *manifest.layers):
        label = LAYER_LABELS.get(layer.media_type, layer.media_type)
        if not blobs.exists(layer.digest):
            checks.append(FileCheck(label, layer.digest, layer.size, False, "missing from the blob store"))
            continue
        actual = cache.digest(blobs, layer.digest)
        if actual == layer.digest:
            checks.append(FileCheck(label, layer.digest, layer.size, True, "sha256 matches"))
        else:
            checks.append(FileCheck(label, layer.digest, layer.size, False, f"content now hashes to {actual}"))
    return checks


# --- license and card ----------------------------------------------------------------------------


def license_of(spec: ModelSpec) -> LicenseFacts:
    """Facts for the model's license: the id recorded on its license layer, else a short license text
    that is itself an id (GGUF ``general.license`` such as ``apache-2.0``), else unknown."""
    declared = license_id(spec)
    if declared:
        return licenses.lookup(declared)
    for text in spec.licenses:
        stripped = text.strip()
        if stripped and "\n" not in stripped and len(stripped) <= 64:
            return licenses.lookup(stripped)
    if spec.licenses:
        return licenses.lookup(spec.licenses[0].strip().splitlines()[0][:64])
    return licenses.UNKNOWN


@dataclass(frozen=True, slots=True)
class CardView:
    html: str
    stored: bool  # False: generated now from the GGUF metadata, not yet stored as a layer
    metadata: dict[str, Any]
    digest: str


def card_of(services: Services, spec: ModelSpec) -> CardView:
    """The stored card layer, or a card made now from the GGUF metadata (marked as not stored)."""
    card: ModelCard
    layer = spec.manifest.first(mt.CARD) if spec.manifest else None
    if layer is not None:
        card = parse_card(services.store.blobs.read(layer.digest).decode("utf-8"))
        stored = True
    else:
        meta = services.models.gguf_info(spec).metadata()
        card = card_from_metadata(meta, license_id(spec) or license_of(spec).id, name=spec.name.display)
        stored = False
    try:
        html = demote_headings(render_html(card.body))
    except ImportError:  # the sanitizer is missing: show the markdown as text, never unsanitized HTML
        html = ""
    return CardView(html, stored, dict(card.metadata), card.digest())


# --- scan ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanView:
    findings: tuple[Finding, ...]
    blocked: bool
    counts: dict[str, int]
    source: str  # "seal" (as recorded when certified) or "now" (run at view time)


def scan_now(spec: ModelSpec) -> ScanView:
    """Run the certification safety scan over the weights and adapters now."""
    findings: list[Finding] = []
    for path in [spec.weights, *spec.adapters]:
        findings.extend(scan_file(path))
    counts: dict[str, int] = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    return ScanView(tuple(findings), counts["critical"] > 0, counts, "now")


def scan_from_summary(summary: Mapping[str, Any]) -> ScanView:
    """A scan as recorded in a seal's predicate."""
    findings = tuple(Finding(str(f.get("severity", "info")), str(f.get("file", "")), str(f.get("code", "")),  # type: ignore[arg-type]
                             str(f.get("message", ""))) for f in summary.get("findings", []) if isinstance(f, Mapping))
    counts_raw = summary.get("counts")
    counts: dict[str, int] = (
        {s: int(counts_raw.get(s, 0)) for s in SEVERITIES} if isinstance(counts_raw, Mapping) else {})
    return ScanView(findings, bool(summary.get("blocked")), counts, "seal")


# --- openness ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComponentView:
    name: str
    mof_class: int
    required: bool
    status: str
    verdict: str
    license: str | None
    evidence: tuple[str, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpennessView:
    graded: bool  # False: no evidence has been recorded for this model yet
    class_roman: str  # "III", "II", "I", "none"
    class_name: str
    components: tuple[ComponentView, ...]
    progress: dict[str, tuple[int, int]] = field(default_factory=dict)
    blockers: str = ""

    @property
    def label(self) -> str:
        return self.class_roman if self.graded else "not graded"


_CLASS_OF = {c.name: (c.mof_class, c.required) for c in COMPONENTS}
_ROMAN_NEXT = {"none": 3, "III": 2, "II": 1}
_ROMAN_NUM = {"III": 3, "II": 2, "I": 1}


def openness_from_json(data: Mapping[str, Any]) -> OpennessView:
    """The MOF grade as recorded (``OpennessReport.to_json`` form, e.g. from a seal's predicate)."""
    comps = []
    for item in data.get("components", []):
        if not isinstance(item, Mapping):
            continue
        name = str(item.get("name", ""))
        cls, required = _CLASS_OF.get(name, (0, False))
        comps.append(ComponentView(name, cls, required, str(item.get("status", "unknown")),
                                   str(item.get("verdict", "unknown")),
                                   None if item.get("license") is None else str(item.get("license")),
                                   tuple(str(e) for e in item.get("evidence", [])),
                                   tuple(str(w) for w in item.get("warnings", []))))
    roman = str(data.get("class", "none"))
    progress = {}
    raw = data.get("progress")
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            if isinstance(value, Mapping):
                progress[str(key)] = (int(value.get("included", 0)), int(value.get("required", 0)))
    nxt = _ROMAN_NEXT.get(roman)
    blockers = ""
    if nxt is not None:
        missing = [c.name for c in comps if c.required and c.mof_class >= nxt
                   and c.verdict not in ("included", "included-warning")]
        blockers = ", ".join(missing)
    return OpennessView(True, roman, str(data.get("className", roman)), tuple(comps), progress, blockers)


def openness_ungraded() -> OpennessView:
    """The MOF checklist with nothing recorded: every component shown, none claimed."""
    report = grade([])
    view = openness_from_json(report.to_json())
    return OpennessView(False, "not graded", "Not graded yet", view.components, view.progress, view.blockers)


# --- audits --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CriterionScore:
    key: str
    title: str
    value: str
    grade: str


@dataclass(frozen=True, slots=True)
class AuditView:
    digest: str
    suites: tuple[str, ...]
    engine: str
    seed: int
    model_digest: str
    scores: tuple[CriterionScore, ...]
    error: str = ""


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}".rstrip("0").rstrip(".") or "0"


def audit_view(digest: str, data: Mapping[str, Any]) -> AuditView:
    """Summarize one stored ``report.json``: suites, engine, seed and each graded criterion."""
    from openzoo.audit.report import CRITERIA, Report
    from openzoo.audit.report import grade as grade_of

    report = Report.from_json(dict(data))
    scores = []
    for c in CRITERIA:
        suite, _, metric = c.metric.partition("/")
        result = report.suites.get(suite)
        m = None if result is None else result.metrics.get(metric)
        if m is None:
            continue
        scores.append(CriterionScore(c.key, c.title, _fmt(m.value), grade_of(m.value, c.direction, c.bands) or "n/a"))
    engine = " ".join(str(v) for v in report.engine.values())
    return AuditView(digest, tuple(report.suites), engine, report.seed, report.model_digest, tuple(scores))


def audits_of(services: Services, spec: ModelSpec) -> list[AuditView]:
    """The audit reports stored as layers of the model, newest layer last."""
    out = []
    for layer in spec.manifest.layers_of(mt.AUDIT) if spec.manifest else []:
        try:
            out.append(audit_view(layer.digest, json.loads(services.store.blobs.read(layer.digest))))
        except (OpenzooError, ValueError, KeyError, TypeError) as exc:
            out.append(AuditView(layer.digest, (), "", 0, "", (), f"unreadable report: {exc}"))
    return out


def audit_html(services: Services, spec: ModelSpec, digest: str) -> str | None:
    """The self-contained HTML of one stored audit report (None when the model has no such layer)."""
    from openzoo.audit.report import Report
    from openzoo.audit.report import render_html as render_report

    if spec.manifest is None or not any(layer.digest == digest for layer in spec.manifest.layers_of(mt.AUDIT)):
        return None
    return render_report(Report.from_json(json.loads(services.store.blobs.read(digest))))


# --- seal and certification ----------------------------------------------------------------------

SealStatus = Literal["certified", "pending", "revoked", "none"]


@dataclass(frozen=True, slots=True)
class CheckView:
    name: str
    status: str  # pass, fail, skip
    reason: str


@dataclass(frozen=True, slots=True)
class SealView:
    status: SealStatus
    verified: bool | None  # None: nothing to verify (no seal)
    checks: tuple[CheckView, ...] = ()
    reviewers: tuple[str, ...] = ()
    issued_at: int | None = None
    log_index: int | None = None
    note: str = ""


def demote_headings(html: str, by: int = 2) -> str:
    """Shift ``<h1>``…``<h6>`` down by ``by`` levels (capped at h6), so a card's own title sits under the
    page's headings instead of competing with its ``<h1>``. Works on sanitized HTML (no heading attributes)."""
    import re

    def shift(match: re.Match[str]) -> str:
        level = min(6, int(match.group(2)) + by)
        return f"<{match.group(1)}h{level}>"

    return re.sub(r"<(/?)h([1-6])>", shift, html)
