"""Run an audit: pick the suites, run them in order, build the report, write it.

Why all-or-nothing: a report that silently misses a suite, or one written half-way through a failed
run, could be cited by a seal. Requests are validated before any model work, suites run in the fixed
order of :data:`~openzoo.audit.suites.SUITES`, and files are written only after every suite succeeded
and both documents rendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openzoo.audit.report import Report, write_reports
from openzoo.audit.scoring import Scorer
from openzoo.audit.suites import SUITES
from openzoo.audit.suites.base import ProgressCallback
from openzoo.errors import InvalidRequest

DEFAULT_SUITES: tuple[str, ...] = tuple(SUITES)


def parse_suites(spec: str | Sequence[str] | None) -> list[str]:
    """``"quality,bias"`` or a list -> validated suite names in canonical order, no duplicates.

    ``None`` or empty means every suite. An unknown name is :class:`InvalidRequest` naming it and the
    valid ones.
    """
    if spec is None:
        return list(DEFAULT_SUITES)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [s for s in names if s]
    if not names:
        return list(DEFAULT_SUITES)
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        raise InvalidRequest(
            f"unknown audit suite {', '.join(repr(u) for u in unknown)}; choose from {', '.join(SUITES)}",
            param="suite",
            hint="pass --suite with a comma-separated list of known suites",
        )
    return [s for s in SUITES if s in names]


def run_audit(
    scorer: Scorer,
    suites: str | Sequence[str] | None,
    data: Path | None,
    seed: int,
    progress: ProgressCallback | None = None,
    *,
    model_name: str,
    model_digest: str,
    engine: Mapping[str, str],
    out_dir: Path | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Report:
    """Run ``suites`` against ``scorer`` and return the :class:`Report`; write it to ``out_dir`` if given.

    ``data`` replaces the bundled data of the one suite selected (with several suites it is an
    :class:`InvalidRequest`, because it would be ambiguous which suite it feeds). ``options`` passes
    per-suite keyword options, e.g. ``{"safety": {"judge": fn}, "explain": {"top_k": 10}}``.
    Bad data raises :class:`~openzoo.errors.InvalidData` naming file and line before anything is written.
    """
    names = parse_suites(suites)
    if data is not None and len(names) != 1:
        raise InvalidRequest(
            "--data goes with exactly one suite; pass --suite NAME as well",
            param="data",
            hint="for example: --suite bias --data pairs.jsonl",
        )
    options = options or {}
    unknown_opts = [k for k in options if k not in names]
    if unknown_opts:
        raise InvalidRequest(f"options given for suites not run: {', '.join(unknown_opts)}", param="options")
    report = Report(model_name=model_name, model_digest=model_digest, engine=dict(engine), seed=seed)
    for name in names:
        report.suites[name] = SUITES[name](scorer, data, seed, progress, **dict(options.get(name, {})))
    if out_dir is not None:
        write_reports(report, out_dir)
    return report
