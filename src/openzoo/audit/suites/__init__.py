"""The audit suites: quality, bias, safety, explain.

Each module has ``run(scorer, data_path, seed, progress_cb, **options) -> SuiteResult``; ``SUITES`` maps
the names the CLI and API accept to those functions, in report order.
"""

from __future__ import annotations

from collections.abc import Callable

from openzoo.audit.suites import bias, explain, quality, safety
from openzoo.audit.suites.base import ProgressCallback, SuiteResult

SuiteRun = Callable[..., SuiteResult]

SUITES: dict[str, SuiteRun] = {
    "quality": quality.run,
    "bias": bias.run,
    "safety": safety.run,
    "explain": explain.run,
}

__all__ = ["SUITES", "ProgressCallback", "SuiteResult", "SuiteRun"]
