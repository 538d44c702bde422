"""docs/compatibility.md must list exactly the routes the app serves."""

from __future__ import annotations

import re
from pathlib import Path

from openzoo import config
from openzoo.app import create_app
from openzoo.services import Services

DOC = Path(__file__).parents[3] / "docs" / "compatibility.md"
ROW = re.compile(r"^\| ([A-Z, ]+) \| `([^`]+)` \|")


def documented() -> set[tuple[str, str]]:
    pairs = set()
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            for method in match.group(1).split(","):
                pairs.add((method.strip(), match.group(2)))
    return pairs


def served(tmp_path: Path) -> set[tuple[str, str]]:
    """Every method and path in the app's OpenAPI schema, outside openzoo's own API and pages."""
    app = create_app(Services(config.load({"OPENZOO_HOME": str(tmp_path)})))
    pairs = set()
    for path, operations in app.openapi()["paths"].items():
        if path.startswith(("/zoo", "/ui", "/v2", "/metrics")):
            continue
        for method in operations:
            pairs.add((method.upper(), path))
    return pairs


def test_every_served_route_is_documented(tmp_path: Path) -> None:
    missing = served(tmp_path) - documented()
    assert not missing, f"routes served but not in docs/compatibility.md: {sorted(missing)}"


def test_every_documented_route_is_served(tmp_path: Path) -> None:
    stale = documented() - served(tmp_path)
    assert not stale, f"routes in docs/compatibility.md that the app does not serve: {sorted(stale)}"
