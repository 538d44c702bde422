"""Helpers for tests with several zoos: copying a live catalog and waiting for what their servers do."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path


def copy_db(source: Path, target: Path) -> None:
    """SQLite's online backup (a connection's ``with`` only commits, so close both explicitly)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def wait_for(what: str, check: Callable[[], bool], seconds: float = 90) -> None:
    """Poll ``check`` until it is true; AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
