"""``openzoo audit NAME``: quality, bias, safety and explain audits of a stored model, in-process.

One progress bar per suite (plain status lines when stderr is not a terminal); the report is written
to ``--out`` as ``report.json`` and ``report.html`` and stored as an AUDIT layer of the model, whose
digest is printed so that a seal can cite it. A failed run writes and stores nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from openzoo.audit.runner import DEFAULT_SUITES
from openzoo.cli.common import local_services
from openzoo.cli.output import err_console
from openzoo.events import Progress as ProgressEvent


class _SuiteBars:
    """Rich bars keyed by suite; the task being scored is shown in the description."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err_console, transient=False)
        self.bars: dict[str, TaskID] = {}

    def __call__(self, event: ProgressEvent) -> None:
        suite = str(event.detail.get("suite", event.status))
        if suite not in self.bars:
            self.bars[suite] = self.progress.add_task(event.status, total=event.total or 1)
        self.progress.update(self.bars[suite], description=event.status, total=event.total or 1,
                             completed=event.completed or 0)


def _plain_printer() -> Callable[[ProgressEvent], None]:
    """Non-terminal progress: a line when the task changes and at every tenth of a suite."""
    last: dict[str, tuple[str, int]] = {}

    def show(event: ProgressEvent) -> None:
        total, done = event.total or 0, event.completed or 0
        tenth = (10 * done // total) if total else 0
        suite = str(event.detail.get("suite", ""))
        if last.get(suite) != (event.status, tenth):
            last[suite] = (event.status, tenth)
            print(f"{event.status} {done}/{total}", file=sys.stderr, flush=True)

    return show


@click.command()
@click.argument("model")
@click.option("--suite", "suite", default=None, metavar="LIST",
              help=f"Comma-separated suites to run (default: all of {','.join(DEFAULT_SUITES)}).")
@click.option("--data", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Data file replacing the bundled data of the one suite selected.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Directory for report.json and report.html (default: ./audit-<model>).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for generation and bootstrap.")
@click.option("--judge", default=None, metavar="MODEL",
              help="A model of the store that judges safety replies (refused or not) before the string matcher.")
@click.option("--no-store", is_flag=True, help="Write the report files only; do not store it on the model.")
def audit(model: str, suite: str | None, data: Path | None, out_dir: Path | None, seed: int,
          judge: str | None, no_store: bool) -> None:
    """Audit a model: quality, bias, safety and explainability, with a readable report."""
    from openzoo.audit.service import audit_model, check_request

    check_request(suite, data)  # a bad suite or --data fails before the model is loaded
    if out_dir is None:
        out_dir = Path("audit-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in model))
    services = local_services()
    started = time.monotonic()
    try:
        if sys.stderr.isatty():
            bars = _SuiteBars()
            with bars.progress:
                outcome = audit_model(services, model, suite, data, seed, bars, out_dir=out_dir,
                                      store=not no_store, judge=judge)
        else:
            outcome = audit_model(services, model, suite, data, seed, _plain_printer(), out_dir=out_dir,
                                  store=not no_store, judge=judge)
    finally:
        services.close()
    elapsed = time.monotonic() - started
    for path in outcome.files:
        click.echo(f"wrote {path}")
    if not no_store:
        click.echo(f"stored audit report {outcome.digest} on {outcome.report.model_name}")
    click.echo(f"audit finished in {elapsed:.0f}s")
