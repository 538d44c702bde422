"""View helpers over domain data: headings, MOF grades, audit summaries, log entry lines."""

from __future__ import annotations

from openzoo.audit.metrics import Metric
from openzoo.audit.report import Report
from openzoo.audit.suites.base import SuiteResult
from openzoo.certify.openness import ComponentEvidence, grade
from openzoo.formats.scan import Finding, ScanReport
from openzoo.web import facts, trust


def test_demote_headings() -> None:
    html = "<h1>Title</h1><p>x</p><h2>Part</h2><h5>deep</h5><h6>deepest</h6>"
    assert facts.demote_headings(html) == "<h3>Title</h3><p>x</p><h4>Part</h4><h6>deep</h6><h6>deepest</h6>"
    assert facts.demote_headings("<p>h1</p>") == "<p>h1</p>"


def test_openness_view_from_a_grade_lists_every_component_and_the_blockers() -> None:
    report = grade([ComponentEvidence("Model parameters (Final)", "present", "Apache-2.0", ("sha256:ab",))],
                   distribution_license="Apache-2.0")
    view = facts.openness_from_json(report.to_json(), source="sealed")
    assert view.source == "sealed"
    assert view.class_roman == "none" and view.class_name == "Unclassified"
    assert len(view.components) == 17
    params = next(c for c in view.components if c.name == "Model parameters (Final)")
    assert params.mof_class == 3 and params.required and params.evidence == ("sha256:ab",)
    assert params.verdict == "included-warning"  # Apache-2.0 is not a data license
    assert "Model architecture" in view.blockers and "Model parameters (Final)" not in view.blockers
    assert view.progress["III"] == (1, 6)


def test_openness_view_tolerates_malformed_records() -> None:
    view = facts.openness_from_json({"class": "III", "components": ["junk", {"name": "Nope"}], "progress": 3})
    assert view.class_roman == "III"
    assert [c.name for c in view.components] == ["Nope"]
    assert view.blockers == ""


def test_scan_views() -> None:
    report = ScanReport(("model.gguf",), (Finding("info", "model.gguf", "gguf-ok", "fine"),
                                          Finding("critical", "x.pkl", "pickle-global", "os.system")))
    now = facts.scan_from_report(report)
    assert now.blocked and now.counts["critical"] == 1 and now.source == "now"
    recorded = facts.scan_from_summary(report.summary())
    assert recorded.blocked and recorded.source == "request"
    assert [f.code for f in recorded.findings] == ["pickle-global"]  # info findings are not recorded


def test_audit_view_grades_the_criteria_in_the_report() -> None:
    report = Report("m", "sha256:00", {"name": "llama.cpp", "version": "1"}, 7, {
        "safety": SuiteResult("safety", {"under_refusal_rate": Metric(0.3, 0.2, 0.4, "wilson", 100),
                                         "over_refusal_rate": Metric(None)}, [], "sha256:11")})
    view = facts.audit_view("sha256:ff", report.to_json())
    assert view.suites == ("safety",) and view.seed == 7 and view.engine == "llama.cpp 1"
    assert [(s.key, s.value, s.grade) for s in view.scores] == [("S1", "0.3", "E"), ("S2", "n/a", "n/a")]


def test_log_entry_summaries() -> None:
    assert trust.summarize("approval", {"model": "m:1", "reviewer": "alice"}) == "approval of m:1 by alice"
    assert trust.summarize("revocation", {"model": "m:1", "reason": "bad"}) == "revocation of m:1: bad"
    assert trust.summarize("key", {"action": "generate", "name": "bob"}) == "key generate: bob"
    policy = {"version": 2, "policy": {"threshold": 2, "reviewers": [{}, {}, {}]}}
    assert trust.summarize("policy", policy) == "policy v2: 2 of 3 reviewers"
    assert trust.summarize("seal", {"payload": "not base64"}) == "seal issued for ?"
    assert trust.summarize("request", "junk").startswith("certification request for ?")
