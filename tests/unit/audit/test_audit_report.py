"""Report JSON schema, HTML contents (plots, layout, escaping, no network) and the runner."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from audit_fakes import FakeScorer

from openzoo.audit import report as rp
from openzoo.audit.metrics import Metric
from openzoo.audit.runner import parse_suites, run_audit
from openzoo.audit.suites import SuiteResult
from openzoo.errors import InvalidData, InvalidRequest

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ENGINE = {"name": "llama.cpp", "version": "test"}


class HostileScorer(FakeScorer):
    """Replies and tokens that try to inject markup."""

    def generate(self, prompts, max_tokens, seed):  # type: ignore[no-untyped-def]
        return [HOSTILE + " Sure." for _ in prompts]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[rp.Report, Path]:
    out = tmp_path_factory.mktemp("audit-out")
    report = run_audit(
        HostileScorer(),
        None,
        None,
        42,
        None,
        model_name=f"evil/{HOSTILE}:latest",
        model_digest="sha256:" + "ab" * 32,
        engine=ENGINE,
        out_dir=out,
    )
    return report, out


def test_json_schema(full_report: tuple[rp.Report, Path]) -> None:
    report, out = full_report
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(data) == {"model", "engine", "seed", "suites"}
    assert data["model"] == {"name": report.model_name, "digest": "sha256:" + "ab" * 32}
    assert data["engine"] == ENGINE and data["seed"] == 42
    assert list(data["suites"]) == ["bias", "explain", "quality", "safety"]  # sorted keys
    for name, suite in data["suites"].items():
        assert set(suite) == {"metrics", "items", "data_digest"}, name
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", suite["data_digest"])
        assert suite["items"]
        for metric in suite["metrics"].values():
            assert set(metric) == {"value", "ci", "ci_method", "confidence", "n"}
            assert len(metric["ci"]) == 2
            assert metric["value"] is None or isinstance(metric["value"], float | int)
    crows = [i for i in data["suites"]["bias"]["items"] if i["task"] == "crows"]
    assert {"category", "stereotype", "anti_stereotype", "ll_stereotype", "ll_anti_stereotype"} <= set(crows[0])
    assert "NaN" not in (out / "report.json").read_text(encoding="utf-8")


def test_json_is_reproducible(full_report: tuple[rp.Report, Path]) -> None:
    report, out = full_report
    again = run_audit(
        HostileScorer(),
        None,
        None,
        42,
        None,
        model_name=report.model_name,
        model_digest=report.model_digest,
        engine=ENGINE,
    )
    assert again.json_text() == (out / "report.json").read_text(encoding="utf-8")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_html_layout_plots_and_escaping(full_report: tuple[rp.Report, Path]) -> None:
    _, out = full_report
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(html)
    # hostile strings only ever appear escaped
    assert "<script" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not any(name.startswith("on") for name, _ in parser.attrs)
    # self-contained: no external resources
    assert "<link" not in html and "@import" not in html
    assert not any(name in ("src", "href") for name, _ in parser.attrs)
    assert set(re.findall(r"https?://[^\s\"'<)]+", html)) <= {"http://www.w3.org/2000/svg"}
    # principle -> criterion -> evidence, grades, guidance
    for text in (
        "How to read this report",
        "Principle: Fairness",
        "Principle: Safety",
        "Principle: Explainability",
        "Criterion F2",
        "Criterion S1",
        "Grade bands",
        "Principle: Reproducibility",
    ):
        assert text in html, text
    assert re.search(r'class="grade grade-[A-E]"', html)
    # plots: bias by category with intervals, refusal rates, token heatmaps, each with a text alternative
    assert html.count("<svg") >= 6
    assert "Minimal pairs: % stereotype preferred, by category" in html
    assert "BBQ s_AMB (ambiguous contexts) by category" in html
    assert 'class="whisker"' in html
    assert "Refusal error rates" in html and "Refusal rate by category" in html
    assert 'class="heatmap"' in html and "Leave-one-out attribution" in html
    assert html.count("<title id=") == html.count("<svg")
    assert parser.tags.count("main") == 1 and "table" in parser.tags and "caption" in parser.tags
    assert html.startswith("<!doctype html>") and '<html lang="en">' in html


def test_grades() -> None:
    assert rp.grade(0.9, "higher", (0.8, 0.65, 0.5, 0.35)) == "A"
    assert rp.grade(0.3, "higher", (0.8, 0.65, 0.5, 0.35)) == "E"
    assert rp.grade(-0.04, "abs", (0.02, 0.05, 0.1, 0.2)) == "B"
    assert rp.grade(58.0, "from50", (2.5, 5, 10, 15)) == "C"
    assert rp.grade(0.3, "lower", (0.02, 0.05, 0.1, 0.25)) == "E"
    assert rp.grade(None, "lower", (0.02, 0.05, 0.1, 0.25)) is None


def test_html_with_a_single_suite_and_undefined_metrics() -> None:
    res = SuiteResult("bias", {"bbq.s_dis": Metric(None), "bbq.s_dis.age": Metric(None)}, [], "sha256:00")
    html = rp.render_html(rp.Report("m", "sha256:1", ENGINE, 0, {"bias": res}))
    assert "n/a" in html and "The explain suite was not run" in html and "The quality suite was not run" in html
    assert "The bias suite was not run" not in html


def test_runner_validation(tmp_path: Path, scorer: FakeScorer) -> None:
    assert parse_suites("safety, quality") == ["quality", "safety"]
    assert parse_suites(None) == ["quality", "bias", "safety", "explain"]
    with pytest.raises(InvalidRequest, match="unknown audit suite 'fairness'"):
        parse_suites("quality,fairness")
    kw = {"model_name": "m", "model_digest": "sha256:1", "engine": ENGINE}
    with pytest.raises(InvalidRequest, match="exactly one suite"):
        run_audit(scorer, "quality,bias", tmp_path / "x.txt", 0, **kw)
    with pytest.raises(InvalidRequest, match="exactly one suite"):
        run_audit(scorer, None, tmp_path / "x.txt", 0, **kw)
    with pytest.raises(InvalidRequest, match="options given for suites not run"):
        run_audit(scorer, "explain", None, 0, options={"safety": {}}, **kw)


def test_failed_run_writes_nothing(tmp_path: Path, scorer: FakeScorer) -> None:
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"category": "age"}\n', encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(InvalidData, match=r"pairs\.jsonl:1: missing field"):
        run_audit(scorer, "bias", bad, 0, model_name="m", model_digest="d", engine=ENGINE, out_dir=out)
    assert not out.exists() or not any(out.iterdir())

    class Broken(FakeScorer):
        def sentence_loglikelihood(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("engine died")

    with pytest.raises(RuntimeError):
        run_audit(Broken(), "explain,bias", None, 0, model_name="m", model_digest="d", engine=ENGINE, out_dir=out)
    assert not out.exists() or not any(out.iterdir())


def test_runner_single_suite_with_data_and_progress(tmp_path: Path, scorer: FakeScorer) -> None:
    data = tmp_path / "p.txt"
    data.write_text("Why is the sky blue\n", encoding="utf-8")
    seen: list[str] = []
    report = run_audit(
        scorer,
        "explain",
        data,
        3,
        lambda p: seen.append(p.status),
        model_name="m",
        model_digest="d",
        engine=ENGINE,
        out_dir=tmp_path / "o",
        options={"explain": {"top_k": 2}},
    )
    assert list(report.suites) == ["explain"] and seen == ["explain: explain"]
    assert (tmp_path / "o" / "report.json").exists() and (tmp_path / "o" / "report.html").exists()
    assert not list((tmp_path / "o").glob("*.tmp"))


def test_interval_chart_bars_grow_from_the_reference() -> None:
    chart = rp.interval_chart([("low", 25.0, 20.0, 30.0, "c"), ("high", 75.0, 70.0, 80.0, "c")], 0, 100, 50, "t")
    low, high = chart["rows"]
    assert low["bar_x"] + low["bar_w"] == pytest.approx(chart["ref_x"])
    assert high["bar_x"] == pytest.approx(chart["ref_x"]) and high["bar_w"] == pytest.approx(low["bar_w"])
    assert low["x0"] < low["x"] < low["x1"]


def test_number_format() -> None:
    assert rp._fmt(None) == "n/a" and rp._fmt(float("nan")) == "n/a"
    assert rp._fmt(12345.6) == "12,346"
    assert rp._fmt(0.5) == "0.5" and rp._fmt(-0.0001) == "0" and rp._fmt(2.0) == "2"


def test_report_round_trips_through_json(full_report: tuple[rp.Report, Path]) -> None:
    report, out = full_report
    text = (out / "report.json").read_text(encoding="utf-8")
    back = rp.Report.from_json(json.loads(text))
    assert back.json_text() == text
    assert back.digest() == report.digest() and re.fullmatch(r"sha256:[0-9a-f]{64}", back.digest())
    assert "<svg" in rp.render_html(back)
