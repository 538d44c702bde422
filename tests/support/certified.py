"""A zoo holding a small certified model: a synthetic GGUF (random weights of a chosen size, so transfers
take measurable time), sealed after a 2-of-3 reviewer quorum, with the zoo's public key exported.

The seal flow is the same for any model, so tests of what travels with a seal (registries, verification)
use this instead of the 253 MB default model.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openzoo import config
from openzoo.certify.service import Certification
from openzoo.services import Services
from support.cli import openzoo
from support.gguf_files import write_gguf


@dataclass(frozen=True)
class CertifiedZoo:
    home: Path
    model: str
    weights_file: Path  # the GGUF that was imported (for byte comparisons)
    public_key: Path  # the zoo's public key, for other zoos to trust


def seal_with_quorum(cert: Certification, model: str) -> None:
    """Reviewers alice, bob and carol under a 2-of-3 policy; alice and bob approve ``model``: it is sealed."""
    for reviewer in ("alice", "bob", "carol"):
        cert.generate_key(reviewer)
    cert.set_policy(["alice", "bob", "carol"], 2)
    cert.request(model)
    cert.approve(model, "alice")
    _, seal = cert.approve(model, "bob")
    assert seal is not None, "the quorum did not seal the model"


def certified_zoo(root: Path, *, model: str = "tiny:v1", weight_bytes: int = 4 << 20) -> CertifiedZoo:
    """Build the zoo under ``root`` (home in ``root/home``)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    columns = max(64, weight_bytes // 16)  # 8 rows of float16
    tensors = {"token_embd.weight": rng.standard_normal((8, columns), dtype=np.float32).astype(np.float16),
               "output_norm.weight": np.ones((64,), dtype=np.float32)}
    weights = write_gguf(root / "tiny.gguf", tensors=tensors)
    home = root / "home"
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        for _ in services.models.import_gguf(weights, model):
            pass
        cert = services.certification
        seal_with_quorum(cert, model)
        public_key = root / "zoo.pub"
        public_key.write_bytes(cert.keyring.export("zoo"))
    finally:
        services.close()
    return CertifiedZoo(home, model, weights, public_key)


def trusting_zoo(root: Path, zoo_a: CertifiedZoo) -> Path:
    """A fresh home under ``root`` that pinned ``zoo_a``'s key (the zoo a pull goes into)."""
    home = root / "b"
    trust = openzoo(home, "keys", "trust", "zoo-a", str(zoo_a.public_key))
    assert trust.returncode == 0, trust.stdout + trust.stderr
    return home


def assert_nothing_stored(home: Path) -> None:
    """A refused pull left no model and no blob behind."""
    with sqlite3.connect(home / "catalog.sqlite") as conn:
        assert conn.execute("SELECT key FROM models").fetchall() == []
    assert sorted(p.name for p in (home / "blobs").glob("sha256-*")) == []
