"""Certification data for the pages, from the certification service (:mod:`openzoo.certify.service`).

The pages call the same :class:`~openzoo.certify.service.Certification` as ``openzoo verify`` and the
``/zoo/*`` API: the model page runs the full offline verification (file digests, seal signature, quorum,
log inclusion, revocation) at view time; the catalog reads the cheap facts (is there a seal, a
revocation, an open request). Where nothing has happened yet, the views say so ("no seal yet",
"not graded yet", "the log is empty").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from openzoo.certify.core import layer_label, sealed_digest
from openzoo.certify.dsse import Envelope, parse_statement
from openzoo.certify.log import verify_receipt
from openzoo.certify.requests import CertifyRequest
from openzoo.certify.service import Certification
from openzoo.errors import OpenzooError
from openzoo.facts.card import render_html
from openzoo.facts.licenses import UNKNOWN_ID, LicenseFacts
from openzoo.names import ModelName
from openzoo.services import Services
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.web.facts import (
    CheckView,
    OpennessView,
    ScanView,
    SealStatus,
    SealView,
    demote_headings,
    openness_from_json,
    scan_from_report,
    scan_from_summary,
)


class Stored(Protocol):
    """A stored model (:class:`~openzoo.models.ModelSpec`) or dataset
    (:class:`~openzoo.datasets.service.StoredDataset`): certification reads both the same way."""

    @property
    def name(self) -> ModelName: ...

    @property
    def manifest(self) -> Manifest | None: ...


def service(services: Services) -> Certification:
    """The store's one certification service (as the ``/zoo`` routes get it)."""
    return services.certification


# --- per model -----------------------------------------------------------------------------------


def license_facts(services: Services, name: str) -> LicenseFacts:
    """The model's license facts; before a card is stored, those of the card certification would draft."""
    cert = service(services)
    facts = cert.license_facts(name)
    if facts.id == UNKNOWN_ID and cert.card(name) is None:
        try:
            return cert.draft_card(name).license_facts()
        except OpenzooError:
            return facts
    return facts


@dataclass(frozen=True, slots=True)
class CardView:
    html: str
    stored: bool  # False: drafted now from the GGUF metadata, not yet stored as a layer
    digest: str


def card(services: Services, name: str) -> CardView:
    """The stored card, or the draft certification would store; rendered as sanitized HTML."""
    found, stored = service(services).card_or_draft(name)
    try:
        html = demote_headings(render_html(found.body))
    except ImportError:  # no sanitizer installed: show nothing rather than unsanitized HTML
        html = ""
    return CardView(html, stored, found.digest())


def _predicate(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The seal's predicate, for display next to the verification result (which checks it)."""
    try:
        statement = parse_statement(Envelope.from_json(bundle["envelope"]).payload)
    except (OpenzooError, KeyError, TypeError):
        return {}
    predicate = statement.get("predicate")
    return predicate if isinstance(predicate, dict) else {}


def _latest_request(cert: Certification, name: str) -> CertifyRequest | None:
    found = cert.requests(name)
    return found[0] if found else None


def _status(cert: Certification, spec: Stored, request: CertifyRequest | None) -> SealStatus:
    manifest = spec.manifest
    if manifest is not None and manifest.first(mt.SEAL) is not None:
        sealed = sealed_digest(manifest)
        if request is not None and request.status == "revoked":
            return "revoked"
        if any(r.get("manifest_digest") == sealed for r in cert.revocations()):
            return "revoked"
        pulled = cert.pulled(spec.name)
        return "none" if pulled is not None and not pulled["certified"] else "certified"
    if request is not None and request.status == "open":
        return "pending"
    return "none"


def _recorded_openness(cert: Certification, spec: Stored, request: CertifyRequest | None) -> OpennessView | None:
    manifest = spec.manifest
    if manifest is not None and manifest.first(mt.SEAL) is not None:
        try:
            openness = _predicate(cert.seal_bundle(spec.name.display)).get("openness")
        except OpenzooError:
            openness = None
        if isinstance(openness, Mapping):
            return openness_from_json(openness, source="sealed")
    if request is not None and isinstance(request.evidence.get("openness"), Mapping):
        return openness_from_json(request.evidence["openness"], source="request")
    return None


def catalog_status(services: Services, spec: Stored) -> tuple[SealStatus, str]:
    """Seal status and openness class for a catalog row (no re-hashing: the model page verifies)."""
    cert = service(services)
    request = _latest_request(cert, spec.name.display)
    openness = _recorded_openness(cert, spec, request)
    if openness is None:
        openness = openness_from_json(cert.openness(spec.name.display).to_json(), source="now")
    return _status(cert, spec, request), openness.class_roman


@dataclass(frozen=True, slots=True)
class ModelTrust:
    seal: SealView
    openness: OpennessView
    scan: ScanView
    layers: tuple[tuple[str, str, int], ...]  # (label, digest, size) of the config and every layer


def certification_view(services: Services, spec: Stored) -> ModelTrust:
    """Verify the model now (``openzoo verify``), and gather its grade, scan and seal details."""
    cert = service(services)
    name = spec.name.display
    request = _latest_request(cert, name)
    status = _status(cert, spec, request)
    result = cert.verify(name)
    checks = tuple(CheckView(c.name, c.status, c.reason) for c in result.checks)
    files_ok = all(c.ok for c in result.checks if c.name == "digests")
    reviewers: tuple[str, ...] = ()
    issued_at: int | None = None
    log_index: int | None = None
    note = ""
    if status in ("certified", "revoked"):
        verified: bool | None = result.ok
        try:
            pred = _predicate(cert.seal_bundle(name))
        except OpenzooError:
            pred = {}
        reviewers = _reviewer_names(cert, pred)
        issued = pred.get("issuedAt")
        issued_at = issued if isinstance(issued, int) else None
        log = pred.get("log")
        index = log.get("index") if isinstance(log, Mapping) else None
        log_index = index if isinstance(index, int) else None
        if result.certified_by:
            note = f"Sealed by {result.certified_by}."
    else:
        verified = False if not files_ok else None
        if status == "pending" and request is not None:
            have = len(request.approvals)
            need = request.threshold if request.threshold is not None else "?"
            note = f"Pending: certification request {request.id[:12]} has {have} of {need} reviewer approvals."
        elif request is not None and request.status == "blocked":
            note = "Certification is blocked: the safety scan found critical problems."
        else:
            note = "No seal yet: this model has not been certified."
        checks = tuple(c for c in checks if c.name == "digests") + tuple(
            c for c in checks if c.name not in ("digests", "seal"))
    openness = _recorded_openness(cert, spec, request) or openness_from_json(cert.openness(name).to_json(),
                                                                             source="now")
    if request is not None and isinstance(request.evidence.get("scan"), Mapping):
        scan = scan_from_summary(request.evidence["scan"])
    else:
        scan = scan_from_report(cert.scan(name))
    manifest = spec.manifest
    layers: tuple[tuple[str, str, int], ...] = ()
    if manifest is not None:
        layers = tuple((layer_label(x.media_type), x.digest, x.size) for x in (manifest.config, *manifest.layers))
    seal = SealView(status, verified, checks, reviewers, issued_at, log_index, note)
    return ModelTrust(seal, openness, scan, layers)


def _reviewer_names(cert: Certification, pred: Mapping[str, Any]) -> tuple[str, ...]:
    approvals = pred.get("approvals")
    if not isinstance(approvals, list):
        return ()
    by_id: dict[str, str] = {}
    for policy in cert.policies():
        for reviewer in policy.reviewers:
            by_id[reviewer.key_id] = reviewer.name
    out = []
    for a in approvals:
        key_id = str(a.get("reviewer_key_id", "")) if isinstance(a, Mapping) else ""
        out.append(by_id.get(key_id, key_id[:12] or "unknown"))
    return tuple(out)


# --- log -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryView:
    index: int
    kind: str
    timestamp: int
    summary: str


@dataclass(frozen=True, slots=True)
class LogView:
    size: int
    checkpoint: str  # the signed note text, "" when the log is empty
    origin: str
    entries: tuple[EntryView, ...]


def summarize(kind: str, body: Any) -> str:
    """One line on what a log entry records."""
    b = body if isinstance(body, Mapping) else {}
    model = b.get("model", "?")
    if kind == "request":
        return f"certification request for {model} (openness {b.get('openness', '?')}, license {b.get('license', '?')})"
    if kind == "approval":
        return f"approval of {model} by {b.get('reviewer') or str(b.get('reviewer_key_id', '?'))[:12]}"
    if kind == "seal":
        payload = _predicate({"envelope": body}) if isinstance(body, Mapping) else {}
        return f"seal issued for {payload.get('model', '?')}"
    if kind == "revocation":
        return f"revocation of {model}: {b.get('reason', '')}"
    if kind == "policy":
        policy = b.get("policy") if isinstance(b.get("policy"), Mapping) else {}
        reviewers = policy.get("reviewers") if isinstance(policy, Mapping) else None
        count = len(reviewers) if isinstance(reviewers, list) else "?"
        threshold = policy.get("threshold", "?") if isinstance(policy, Mapping) else "?"
        return f"policy v{b.get('version', '?')}: {threshold} of {count} reviewers"
    if kind == "key":
        return f"key {b.get('action', '?')}: {b.get('name', '?')}"
    return kind


def log_view(services: Services, limit: int = 50) -> LogView:
    """The signed tree head and the most recent entries, newest first."""
    cert = service(services)
    size = cert.log.size()
    if size == 0:
        return LogView(0, "", cert.log.origin, ())
    note = cert.head()
    start = max(0, size - limit)
    entries = [EntryView(e.index, e.kind, e.timestamp, summarize(e.kind, e.body))
               for e in cert.log.entries(start, limit)]
    return LogView(size, note, cert.log.origin, tuple(reversed(entries)))


@dataclass(frozen=True, slots=True)
class InclusionView:
    index: int
    ok: bool
    reason: str
    path_length: int = 0
    tree_size: int = 0


def verify_inclusion(services: Services, index: int) -> InclusionView:
    """Prove entry ``index`` is in the tree under the latest signed head, and check proof and signature."""
    cert = service(services)
    size = cert.log.size()
    if size == 0:
        return InclusionView(index, False, "the transparency log is empty")
    if not 0 <= index < size:
        return InclusionView(index, False, f"the log has entries 0 to {size - 1}")
    try:
        receipt = cert.log.receipt(index, cert.head())
        checkpoint = verify_receipt(receipt, cert.zoo_keys(), cert.log.origin)
    except OpenzooError as exc:
        return InclusionView(index, False, exc.message)
    return InclusionView(index, True, f"The tree head is signed by this zoo's key ({checkpoint.origin}).",
                         len(receipt.path), checkpoint.size)


@dataclass(frozen=True, slots=True)
class LogCheckView:
    ok: bool
    size: int
    heads_checked: int
    problems: tuple[str, ...]


def verify_log(services: Services) -> LogCheckView:
    """``openzoo log verify``: recompute every leaf and the root, and check every stored signed head."""
    cert = service(services)
    report = cert.log.verify_log(cert.zoo_keys())
    return LogCheckView(report.ok, report.size, report.heads_checked, tuple(report.problems))


# --- reviewer queue ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestView:
    model: str
    request_id: str
    opened_at: float
    approvals: tuple[str, ...]
    threshold: int | None
    license: str
    openness: str
    scan: str
    card_problems: tuple[str, ...]


def pending_requests(services: Services) -> list[RequestView]:
    """Certification requests still waiting for reviewer approvals, with their evidence."""
    out = []
    for req in service(services).requests(status="open"):
        ev = req.evidence
        scan = _mapping(ev.get("scan"))
        counts = _mapping(scan.get("counts"))
        scan_text = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "no findings"
        openness = ev.get("openness_explained") or ""
        problems = tuple(str(p) for p in _mapping(ev.get("card")).get("problems", []))
        out.append(RequestView(req.model, req.id, req.created_at, tuple(req.approvals), req.threshold,
                               str(ev.get("license_summary", "")), str(openness), scan_text, problems))
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
