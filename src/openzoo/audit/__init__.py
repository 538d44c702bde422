"""Ethical-AI audit toolkit: quality, bias, safety and explainability audits with readable reports.

Layout: ``scoring`` (the :class:`Scorer` protocol a model backend implements, and the pure scoring
arithmetic), ``metrics`` (every formula), ``refusal`` (refusal detection), ``datasets`` (loading and
validating data), ``suites/`` (one module per suite), ``report`` (JSON and HTML), ``runner``
(:func:`run_audit`). Bundled data and datasheets live in ``data/`` (CC-BY-4.0); ``datagen`` regenerates
the template-built files.
"""

from __future__ import annotations

from openzoo.audit.report import Report, render_html, write_reports
from openzoo.audit.runner import parse_suites, run_audit
from openzoo.audit.scoring import Alternative, Scorer, TokenDistribution, TokenStat
from openzoo.audit.suites import SUITES, SuiteResult

__all__ = [
    "SUITES",
    "Alternative",
    "Report",
    "Scorer",
    "SuiteResult",
    "TokenDistribution",
    "TokenStat",
    "parse_suites",
    "render_html",
    "run_audit",
    "write_reports",
]
