"""The house's wiring rules that import-linter cannot see: where error classes live and what the client
maps back."""

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
        assert issubclass(cls, type(found)) or type(found) is errors.NotFound  # a subclass sharing a code maps to the first

