"""License facts and MOF grading, including the default Gemma model and the reference's example."""

from __future__ import annotations

import pytest

from openzoo.certify.openness import COMPONENTS, ComponentEvidence, grade
from openzoo.errors import InvalidRequest
from openzoo.facts.licenses import LICENSES, describe, from_hf, lookup


def test_gemma_is_restricted_not_open_source() -> None:
    facts = from_hf("gemma")
    assert facts.id == "LicenseRef-Gemma"
    text = describe("LicenseRef-Gemma")
    assert text.startswith("restricted license (Gemma Terms of Use), not open source")
    assert "Prohibited Use Policy" in text and "not OSI-approved" in text
    assert not facts.open_source and not facts.mof_open and facts.category == "restricted"
    assert facts.to_json()["summary"] == text


@pytest.mark.parametrize(
    ("hf", "spdx", "category"),
    [
        ("apache-2.0", "Apache-2.0", "open-source"),
        ("mit", "MIT", "open-source"),
        ("bsd-3-clause", "BSD-3-Clause", "open-source"),
        ("gpl-3.0", "GPL-3.0-only", "open-source"),
        ("cc-by-4.0", "CC-BY-4.0", "open-content"),
        ("cc-by-sa-4.0", "CC-BY-SA-4.0", "open-content"),
        ("cc0-1.0", "CC0-1.0", "open-content"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0", "restricted"),
        ("openrail", "LicenseRef-OpenRAIL", "restricted"),
        ("bigscience-openrail-m", "LicenseRef-BigScience-OpenRAIL-M", "restricted"),
        ("creativeml-openrail-m", "LicenseRef-CreativeML-OpenRAIL-M", "restricted"),
        ("llama3.1", "LicenseRef-Llama-3.1", "restricted"),
        ("llama3.2", "LicenseRef-Llama-3.2", "restricted"),
        ("unknown", "LicenseRef-Unknown", "unknown"),
    ],
)
def test_hf_mapping(hf: str, spdx: str, category: str) -> None:
    facts = lookup(hf)
    assert (facts.id, facts.category) == (spdx, category)
    assert lookup(spdx) is facts and lookup(spdx.upper()) is facts
    assert describe(facts)


def test_other_and_unknown() -> None:
    assert from_hf("other", "qwen").id == "LicenseRef-Qwen"
    assert from_hf("other", "qwen-research").commercial_use == "no"
    weird = lookup("My-Custom-1.0")
    assert weird.category == "unknown" and "My-Custom-1.0" in weird.name
    assert describe(None).startswith("unknown license")
    assert lookup("CC-BY-NC-4.0").commercial_use == "no"
    assert all(f.id == key for key, f in LICENSES.items())


def test_components_are_the_17_mof_names() -> None:
    assert len(COMPONENTS) == 17 and len({c.name for c in COMPONENTS}) == 17
    assert [sum(c.required and c.mof_class >= k for c in COMPONENTS) for k in (3, 2, 1)] == [6, 10, 14]


def ev(name: str, license: str | None = None) -> ComponentEvidence:
    return ComponentEvidence(name, "present", license, ("sha256:" + "ab" * 32,))


def test_reference_example_and_upgrades() -> None:
    base = [
        ev(n)
        for n in (
            "Model parameters (Final)",
            "Model architecture",
            "Inference code",
            "Model card",
            "Evaluation results",
            "Technical report",
        )
    ]
    report = grade(base, distribution_license="Apache-2.0")
    assert report.mof_class == 0 and report.progress[3] == (5, 6)
    text = report.explain()
    assert "Class III Open Model is blocked by: Data card (unknown" in text
    assert "Apache-2.0 is not a data license" in text
    with_card = grade([*base, ev("Data card", "CC-BY-4.0")], distribution_license="Apache-2.0")
    assert with_card.mof_class == 3 and with_card.class_name == "Class III Open Model"
    blockers = {r.component.name for r in with_card.blockers(2)}
    assert blockers == {"Training code", "Evaluation code", "Evaluation data"}
    full = grade(
        [*base, ev("Data card", "CC-BY-4.0")]
        + [
            ev(
                n,
                "CC0-1.0" if n in ("Evaluation data", "Datasets", "Model parameters (Intermediate)") else None,
            )
            for n in (
                "Training code",
                "Evaluation code",
                "Evaluation data",
                "Datasets",
                "Data preprocessing code",
                "Model parameters (Intermediate)",
                "Research paper",
            )
        ],
        distribution_license="Apache-2.0",
    )
    assert full.mof_class == 1 and "highest class" in full.explain()
    assert full.to_json()["class"] == "I"


def test_gemma_default_model_grades_unclassified() -> None:
    report = grade(
        [
            ev("Model parameters (Final)"),
            ev("Model card"),
            ComponentEvidence("Datasets", "absent"),
            ComponentEvidence("Technical report", "present"),
        ],  # claimed without evidence
        distribution_license="LicenseRef-Gemma",
    )
    assert report.mof_class == 0
    reasons = {r.component.name: r.reason() for r in report.blockers(3)}
    assert reasons["Model parameters (Final)"].startswith("license LicenseRef-Gemma is not open")
    assert reasons["Technical report"] == "no evidence"
    assert report.to_json()["class"] == "none"
    unlicensed = grade([ev("Model card")])
    assert unlicensed.components[3].verdict == "unlicensed"


def test_bad_components() -> None:
    with pytest.raises(InvalidRequest):
        ComponentEvidence("Weights")
    with pytest.raises(InvalidRequest):
        ComponentEvidence("Model card", "maybe")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        grade([ev("Model card"), ev("Model card")])
