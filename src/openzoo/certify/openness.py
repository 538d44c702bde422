"""Model Openness Framework (MOF 1.0) grading from evidence, with the reason for the grade.

Why evidence: the MOF Tool grades self-reported answers; here each component carries what shows it
exists (a blob digest, a URL, or the card section that claims it), and a component claimed "present"
without evidence does not count. The rules are the MOT's (``ModelEvaluator.php`` / ``LicenseHandler.php``):

1. a component's license is its own, else the release license for its content type (code, data,
   document), else the distribution license, else it is unlicensed;
2. the license is *open* (OSI, FSF libre, the open-data list or OpenMDW) and *type-appropriate*
   → included; open only → included with a warning; not open → invalid; none → unlicensed;
3. classes are cumulative: III (Open Model) needs its 6 required components, II (Open Tooling) those
   plus 4, I (Open Science) those plus 4; the class is the best one at 100 %, else none (Unclassified).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from openzoo.errors import InvalidRequest
from openzoo.facts.licenses import ContentType, LicenseFacts, lookup

__all__ = [
    "CLASS_NAMES",
    "COMPONENTS",
    "Component",
    "ComponentEvidence",
    "ComponentResult",
    "OpennessReport",
    "grade",
]

Status = Literal["present", "absent", "unknown"]
Verdict = Literal["included", "included-warning", "invalid", "unlicensed", "absent", "unknown"]
CLASS_NAMES = {
    3: "Class III Open Model",
    2: "Class II Open Tooling",
    1: "Class I Open Science",
    0: "Unclassified",
}
_ROMAN = {3: "III", 2: "II", 1: "I", 0: "none"}


@dataclass(frozen=True)
class Component:
    """A MOF component: its MOT id, exact name, content type, class and whether it is required."""

    id: int
    name: str
    type: ContentType
    mof_class: int
    required: bool


COMPONENTS: tuple[Component, ...] = (
    Component(9, "Model architecture", "code", 3, True),
    Component(10, "Model parameters (Final)", "data", 3, True),
    Component(12, "Evaluation results", "document", 3, True),
    Component(13, "Model card", "document", 3, True),
    Component(14, "Data card", "document", 3, True),
    Component(11, "Technical report", "document", 3, True),
    Component(20, "Sample model outputs", "document", 3, False),
    Component(7, "Training code", "code", 2, True),
    Component(8, "Inference code", "code", 2, True),
    Component(18, "Evaluation code", "code", 2, True),
    Component(19, "Evaluation data", "data", 2, True),
    Component(22, "Supporting libraries and tools", "code", 2, False),
    Component(15, "Datasets", "data", 1, True),
    Component(16, "Data preprocessing code", "code", 1, True),
    Component(24, "Model parameters (Intermediate)", "data", 1, True),
    Component(21, "Research paper", "document", 1, True),
    Component(17, "Model metadata", "data", 1, False),
)
_BY_NAME = {c.name: c for c in COMPONENTS}


@dataclass(frozen=True)
class ComponentEvidence:
    """What is known about one component: status, its own license (if any) and evidence references
    (``sha256:…`` blob digests, ``https://…`` URLs, or ``card#Section`` claims)."""

    name: str
    status: Status = "unknown"
    license: str | None = None
    evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in _BY_NAME:
            raise InvalidRequest(f"unknown MOF component {self.name!r}", hint="use the exact MOF 1.0 component names")
        if self.status not in ("present", "absent", "unknown"):
            raise InvalidRequest(f"component status must be present, absent or unknown, not {self.status!r}")


@dataclass(frozen=True)
class ComponentResult:
    """How one component was graded."""

    component: Component
    status: Status
    license: str | None
    verdict: Verdict
    evidence: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def counts(self) -> bool:
        """Whether it counts towards a class (``included``, with or without a warning)."""
        return self.verdict in ("included", "included-warning")

    def reason(self) -> str:
        """Why it does not count, in words."""
        if self.verdict == "absent":
            return "absent"
        if self.verdict == "unknown":
            return "no evidence" if self.status == "present" else "unknown: no evidence either way"
        if self.verdict == "unlicensed":
            return "no license"
        if self.verdict == "invalid":
            facts = lookup(self.license)
            return f"license {facts.id} is not open ({facts.use_restrictions or 'not an open license'})"
        return "included"


@dataclass(frozen=True)
class OpennessReport:
    """The graded components, the class (3, 2, 1 or 0) and per-class progress."""

    mof_class: int
    components: tuple[ComponentResult, ...]
    progress: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # class -> (included, required)

    @property
    def class_name(self) -> str:
        """E.g. ``Class III Open Model`` or ``Unclassified``."""
        return CLASS_NAMES[self.mof_class]

    def blockers(self, mof_class: int) -> list[ComponentResult]:
        """Required components of classes III..``mof_class`` that do not count yet."""
        return [
            r for r in self.components if r.component.required and r.component.mof_class >= mof_class and not r.counts
        ]

    def explain(self) -> str:
        """Which class was reached and which missing components block the next one."""
        lines = [f"MOF class: {self.class_name}"]
        nxt = 3 if self.mof_class == 0 else self.mof_class - 1
        if nxt >= 1:
            blocking = self.blockers(nxt)
            lines.append(
                f"{CLASS_NAMES[nxt]} is blocked by: "
                + "; ".join(f"{r.component.name} ({r.reason()})" for r in blocking)
            )
        else:
            lines.append("This is the highest class.")
        warnings = [f"{r.component.name}: {w}" for r in self.components for w in r.warnings]
        if warnings:
            lines.append("Warnings: " + "; ".join(warnings))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON form for seals: the class and each component with its evidence."""
        return {
            "class": _ROMAN[self.mof_class],
            "className": self.class_name,
            "framework": {"name": "Model Openness Framework", "version": "1.0"},
            "progress": {_ROMAN[c]: {"included": i, "required": n} for c, (i, n) in self.progress.items()},
            "components": [
                {
                    "name": r.component.name,
                    "status": r.status,
                    "license": r.license,
                    "verdict": r.verdict,
                    "evidence": list(r.evidence),
                    "warnings": list(r.warnings),
                }
                for r in self.components
            ],
        }


def _grade_one(
    component: Component, given: ComponentEvidence | None, release: Mapping[str, str | None]
) -> ComponentResult:
    status: Status = given.status if given else "unknown"
    evidence = given.evidence if given else ()
    own = given.license if given else None
    license_id = own or release.get(component.type) or release.get("distribution")
    if status == "absent":
        return ComponentResult(component, status, license_id, "absent", evidence)
    if status == "unknown" or not evidence:
        return ComponentResult(component, status, license_id, "unknown", evidence)
    if not license_id:
        return ComponentResult(component, status, None, "unlicensed", evidence)
    facts: LicenseFacts = lookup(license_id)
    if not facts.mof_open:
        return ComponentResult(component, status, facts.id, "invalid", evidence)
    if component.type in facts.mof_types:
        return ComponentResult(component, status, facts.id, "included", evidence)
    return ComponentResult(
        component,
        status,
        facts.id,
        "included-warning",
        evidence,
        (f"{facts.id} is not a {component.type} license",),
    )


def grade(
    components: Iterable[ComponentEvidence],
    *,
    distribution_license: str | None = None,
    code_license: str | None = None,
    data_license: str | None = None,
    document_license: str | None = None,
) -> OpennessReport:
    """Grade the given components (missing ones are ``unknown``) under the release licenses."""
    given: dict[str, ComponentEvidence] = {}
    for item in components:
        if item.name in given:
            raise InvalidRequest(f"MOF component {item.name!r} given twice")
        given[item.name] = item
    release = {
        "distribution": distribution_license,
        "code": code_license,
        "data": data_license,
        "document": document_license,
    }
    results = tuple(_grade_one(c, given.get(c.name), release) for c in COMPONENTS)
    progress: dict[int, tuple[int, int]] = {}
    reached = 0
    for cls in (3, 2, 1):
        required = [r for r in results if r.component.required and r.component.mof_class >= cls]
        included = sum(r.counts for r in required)
        progress[cls] = (included, len(required))
        if included == len(required):  # the required set is cumulative, so higher classes are met too
            reached = cls
    return OpennessReport(reached, results, progress)
