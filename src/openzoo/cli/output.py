"""Terminal rendering of domain events: text to stdout, progress bars to stderr.

Progress bars appear only when stderr is a terminal; otherwise each new status is one plain line, so
logs and pipes stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from openzoo import events

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def render_progress(stream: Iterable[events.Progress]) -> None:
    """Draw progress events: one bar per byte-counted status, a line per other status."""
    if not sys.stderr.isatty():
        last = ""
        for event in stream:
            if event.status != last:
                print(event.status, file=sys.stderr, flush=True)
                last = event.status
        return
    bars: dict[str, TaskID] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err_console, transient=False) as progress:
        for event in stream:
            if event.total:
                key = event.status
                if key not in bars:
                    bars[key] = progress.add_task(event.status, total=event.total)
                progress.update(bars[key], completed=event.completed or 0)
            else:
                progress.console.print(event.status)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Ollama-style plain columns (no box drawing), so output stays grep-able."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["    ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["    ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def ago(when: float) -> str:
    """How long ago ``when`` was, as ``ollama list`` says it ("3 hours ago")."""
    seconds = max(0.0, time.time() - when)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago" if seconds >= 1 else "Less than a second ago"
