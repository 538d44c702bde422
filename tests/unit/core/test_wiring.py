"""The house's wiring rules that import-linter cannot see: where error classes live, what the client
maps back, and that OPENZOO_* settings are read in config.py only."""

from __future__ import annotations

import ast
from pathlib import Path

from openzoo import client, errors

SRC = Path(errors.__file__).parent


def _error_names() -> set[str]:
    return {name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, errors.OpenzooError)}


def test_every_error_class_lives_in_errors_py() -> None:
    known = _error_names()
    elsewhere = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "errors.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases}
                if bases & known:
                    elsewhere.append(f"{path.relative_to(SRC)}: {node.name}")
    assert elsewhere == []


def test_the_client_maps_every_code_back_to_its_class() -> None:
    for name in _error_names():
        cls = getattr(errors, name)
        found = client._error(cls.code, "message", cls.http_status)
        assert found.code == cls.code and isinstance(found, errors.OpenzooError)
        # a subclass that shares its parent's code maps to the parent (ModelNotFound: to NotFound)
        assert issubclass(cls, type(found)) or type(found) is errors.NotFound


def test_openzoo_settings_are_read_in_config_py_only() -> None:
    """Other modules may set or pass on the process environment (PATH for a subprocess, a library's own
    switch), but an ``OPENZOO_*`` variable is a setting: config.py reads it and passes it down."""
    readers = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "config.py" and path.parent == SRC:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ("os.environ" in line or "getenv(" in line) and ("OPENZOO_" in line or "_ENV" in line):
                readers.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert readers == []
