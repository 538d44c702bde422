"""docs/architecture.md draws the layers that pyproject.toml's import-linter contract checks: same names,
same order, every one a node of the picture."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [" ".join(layer.split()) for layer in contract["layers"]]


def test_the_picture_lists_the_contracts_layers_in_order() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    listed = re.search(r"<!-- layers \(top to bottom, as in pyproject.toml\):\n(.*?)\n-->", doc, re.S)
    assert listed is not None
    assert [" ".join(x.split()) for x in listed.group(1).replace("\n", " ").split(",")] == _contract_layers()
    picture = re.search(r"```mermaid\n(.*?)```", doc, re.S)
    assert picture is not None
    nodes = set(re.findall(r'(\w+)\["', picture.group(1)))
    for layer in _contract_layers():
        for name in (n.strip() for n in re.split(r"[|:]", layer)):
            assert name == "__main__" or name in nodes, name
