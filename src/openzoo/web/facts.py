"""Facts about one model for the pages, gathered through the domain layer.

Each function here calls the same domain code the API and CLI use (``Models.resolve``, ``show``,
``certify.*``, ``audit.report``) and turns the result into small view objects the templates render.
Where a piece of data does not exist yet (no seal, no audit, no log), the view says so instead of
inventing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from openzoo.certify.openness import COMPONENTS
from openzoo.errors import OpenzooError
from openzoo.formats.scan import SEVERITIES, Finding, ScanReport
from openzoo.services import Services

# --- scan ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanView:
    findings: tuple[Finding, ...]
    blocked: bool
    counts: dict[str, int]
    source: str  # "request" (recorded with the certification request) or "now" (run at view time)


def scan_from_report(report: ScanReport) -> ScanView:
    """A scan run now by the certification service."""
    return ScanView(report.findings, report.blocked, dict(report.counts()), "now")


def scan_from_summary(summary: Mapping[str, Any]) -> ScanView:
    """A scan as recorded in a seal's predicate."""
    findings = tuple(Finding(str(f.get("severity", "info")), str(f.get("file", "")), str(f.get("code", "")),  # type: ignore[arg-type]
                             str(f.get("message", ""))) for f in summary.get("findings", []) if isinstance(f, Mapping))
    counts_raw = summary.get("counts")
    counts: dict[str, int] = (
        {s: int(counts_raw.get(s, 0)) for s in SEVERITIES} if isinstance(counts_raw, Mapping) else {})
    return ScanView(findings, bool(summary.get("blocked")), counts, "request")


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
    source: str  # "sealed" (in the seal), "request" (recorded with the request) or "now" (graded at view time)
    class_roman: str  # "III", "II", "I", "none"
    class_name: str
    components: tuple[ComponentView, ...]
    progress: dict[str, tuple[int, int]] = field(default_factory=dict)
    blockers: str = ""


_CLASS_OF = {c.name: (c.mof_class, c.required) for c in COMPONENTS}
_ROMAN_NEXT = {"none": 3, "III": 2, "II": 1}
_ROMAN_NUM = {"III": 3, "II": 2, "I": 1}


def openness_from_json(data: Mapping[str, Any], source: str = "now") -> OpennessView:
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
    return OpennessView(source, roman, str(data.get("className", roman)), tuple(comps), progress, blockers)


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
    created_at: str = ""


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


def audits_of(services: Services, name: str) -> list[AuditView]:
    """The audit reports stored on the model (``GET /zoo/models/NAME/audits``), oldest first."""
    from openzoo.audit.service import list_audits, read_audit

    out = []
    for item in list_audits(services, name):
        digest = str(item["digest"])
        try:
            view = audit_view(digest, read_audit(services, name, digest))
        except (OpenzooError, ValueError, KeyError, TypeError) as exc:
            view = AuditView(digest, (), "", 0, "", (), error=f"unreadable report: {exc}")
        out.append(replace(view, created_at=str(item.get("created_at") or "")))
    return out


def audit_html(services: Services, name: str, digest: str) -> str:
    """The self-contained HTML of one stored audit report (NotFound when the model has no such report)."""
    from openzoo.audit.report import Report
    from openzoo.audit.report import render_html as render_report
    from openzoo.audit.service import read_audit

    return render_report(Report.from_json(read_audit(services, name, digest)))


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
    def shift(match: re.Match[str]) -> str:
        level = min(6, int(match.group(2)) + by)
        return f"<{match.group(1)}h{level}>"

    return re.sub(r"<(/?)h([1-6])>", shift, html)


# --- quantizations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantRow:
    """One quantization of a source, with the cost its lineage records (``None`` for the source itself)."""

    name: str
    type: str
    size: int
    quality: Mapping[str, Any] | None
    size_ratio: float | None
    current: bool


@dataclass(frozen=True, slots=True)
class QuantizationsView:
    source: str
    rows: tuple[QuantRow, ...]


def quantizations_of(services: Services, name: str) -> QuantizationsView | None:
    """The model's source and every stored quantization of it, each with its measured cost, so a person
    picks a size by what it loses; None when the model neither is nor has a quantization."""
    from openzoo.facts.quantization import KIND
    from openzoo.finetune.lineage import lineage_of
    from openzoo.store import manifests as mt

    spec = services.models.resolve(name)
    own = lineage_of(services.store, spec.manifest) if spec.manifest is not None else None
    source_digest = (own.get("base") or {}).get("manifest_digest") if own and own.get("kind") == KIND else spec.digest
    rows: list[QuantRow] = []
    source = ""
    for entry in services.store.catalog.entries():
        try:
            manifest = services.store.load_manifest(entry.manifest_digest)
            record = lineage_of(services.store, manifest)
        except (OpenzooError, ValueError):
            continue
        current = entry.manifest_digest == spec.digest
        base = (record or {}).get("base") or {}
        if entry.manifest_digest == source_digest:
            source = source or entry.display
            model = services.models.resolve(entry.display)
            weights = manifest.first(mt.MODEL)
            rows.append(QuantRow(entry.display, model.details.quantization_level, weights.size if weights else 0,
                                 None, None, current))
        elif record and record.get("kind") == KIND and base.get("manifest_digest") == source_digest:
            q = record.get("quantization") or {}
            rows.append(QuantRow(entry.display, str(q.get("type", "?")), int(q.get("size") or 0),
                                 record.get("quality") or {}, q.get("size_ratio"), current))
    if not any(row.quality is not None for row in rows):
        return None
    rows.sort(key=lambda row: (row.quality is not None, -row.size))
    return QuantizationsView(source or str((own or {}).get("base", {}).get("name", "")), tuple(rows))
