"""The certification flow over a real store with a tiny GGUF: request, approvals, seal, verify, tampering,
cards, policy rotation, the scan blocking, the ML-BOM, model-signing directories and the registry routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openzoo import config, names
from openzoo.certify.core import sealed_manifest
from openzoo.certify.service import Certification
from openzoo.errors import Conflict, ScanBlocked, VerificationFailed
from openzoo.facts.card import parse_card
from openzoo.models import Models
from openzoo.schema import open_store
from openzoo.store import manifests as mt
from openzoo.store.store import Store
from support.gguf_files import write_gguf

NAME = "tiny:1"


@pytest.fixture
def store(tmp_path: Path, catalog_url: str | None) -> Iterator[Store]:
    store = open_store(tmp_path / "home", catalog_url)
    gguf = write_gguf(tmp_path / "tiny.gguf", chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")
    for _ in Models(store).import_gguf(gguf, NAME, license_text="Apache 2.0", license_id="Apache-2.0"):
        pass
    yield store
    store.close()


@pytest.fixture
def cert(store: Store) -> Certification:
    cert = Certification(store)
    for name in ("alice", "bob", "carol", "mallory"):
        cert.generate_key(name)
    cert.set_policy(["alice", "bob", "carol"], 2)
    return cert


def failed(cert: Certification, name: str = NAME) -> dict[str, str]:
    return {c.name: c.reason for c in cert.verify(name).failed()}


def test_request_approve_seal_verify(cert: Certification) -> None:
    req = cert.request(NAME)
    assert req.status == "open" and req.evidence["license"]["id"] == "Apache-2.0"
    assert not req.evidence["scan"]["blocked"]
    result, seal = cert.approve(NAME, "alice")
    assert not result.met and seal is None
    assert "1 of 2 approvals (alice)" in failed(cert)["quorum"]
    with pytest.raises(Conflict, match="already approved by alice"):
        cert.approve(NAME, "alice")
    with pytest.raises(VerificationFailed, match="not a reviewer"):
        cert.approve(NAME, "mallory")
    result, seal = cert.approve(NAME, "bob")
    assert result.met and seal is not None
    verdict = cert.verify(NAME)
    assert verdict.ok, verdict.to_json()
    assert {c.name for c in verdict.checks} >= {"digests", "seal signature", "quorum", "log inclusion",
                                                 "revocation", "approvals logged"}
    assert cert.log.verify_log(cert.zoo_keys()).ok
    kinds = [e.kind for e in cert.log.entries(0, 100)]
    assert kinds.count("approval") == 2 and "seal" in kinds and "policy" in kinds and "key" in kinds
    cert.revoke(NAME, "bad weights")
    assert "bad weights" in failed(cert)["revocation"]
    again = cert.request(NAME)  # after a revocation the model can be certified afresh
    assert again.status == "open" and again.id != req.id
    cert.approve(NAME, "carol")
    cert.approve(NAME, "bob")
    assert cert.verify(NAME).ok


def _seal(cert: Certification) -> None:
    cert.request(NAME)
    cert.approve(NAME, "alice")
    cert.approve(NAME, "bob")


def test_cached_digests_still_catch_a_changed_blob(cert: Certification, store: Store) -> None:
    _seal(cert)
    assert cert.verify(NAME).ok  # hashes and caches
    manifest = store.resolve(names.parse(NAME)).manifest
    weights = manifest.first(mt.MODEL)
    assert weights is not None and store.catalog.verified_at(weights.digest) is not None
    path = store.blobs.path(weights.digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert "weights blob" in failed(cert)["digests"]


def test_edited_card_breaks_the_seal_and_keeps_history(cert: Certification, store: Store) -> None:
    _seal(cert)
    card = cert.card(NAME)
    assert card is not None
    card.body += "\n## Evaluation results\n\nMMLU 25.\n"
    cert.set_card(NAME, card)
    problems = failed(cert)
    assert "card" in problems and "manifest" in problems
    assert len(store.catalog.history(names.parse(NAME))) >= 2


def test_policy_rotation_needs_k_current_reviewers(cert: Certification) -> None:
    with pytest.raises(VerificationFailed, match="must be signed"):
        cert.set_policy(["alice", "bob"], 1)
    with pytest.raises(VerificationFailed, match="signed by 1 of the 2"):
        cert.set_policy(["alice", "bob"], 1, ["alice"])
    new = cert.set_policy(["alice", "bob"], 1, ["alice", "carol"])
    assert new.version == 2 and cert.policy().threshold == 1


def test_critical_scan_finding_blocks(tmp_path: Path, catalog_url: str | None) -> None:
    store = open_store(tmp_path / "home", catalog_url)
    bad = write_gguf(tmp_path / "bad.gguf", chat_template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    for _ in Models(store).import_gguf(bad, "bad:1", license_id="Apache-2.0"):
        pass
    cert = Certification(store)
    with pytest.raises(ScanBlocked, match="blocked by the safety scan"):
        cert.request("bad:1")
    assert cert.requests("bad:1")[0].status == "blocked"
    store.close()


def test_card_is_drafted_from_gguf_and_roundtrips(cert: Certification) -> None:
    card = cert.ensure_card(NAME)
    assert card.metadata["license"] == "apache-2.0"
    assert parse_card(card.render()).render() == card.render()
    assert "<script" not in parse_card(card.render() + "\n<script>alert(1)</script>\n").html()


def test_openness_explains_blockers(cert: Certification) -> None:
    cert.ensure_card(NAME)
    text = cert.openness(NAME).explain()
    assert "Class III Open Model is blocked by" in text or "blocked by" in text


def test_bom_validates_against_cyclonedx_1_6(cert: Certification) -> None:
    pytest.importorskip("cyclonedx")
    from openzoo.certify.bom import build_bom

    _seal(cert)
    bom = build_bom(cert, NAME)
    component = bom["metadata"]["component"]
    assert bom["specVersion"] == "1.6" and component["type"] == "machine-learning-model"
    assert component["licenses"][0]["license"]["id"] == "Apache-2.0"


def test_model_signing_directory(cert: Certification, tmp_path: Path) -> None:
    _seal(cert)
    out = tmp_path / "export"
    cert.export_signature(NAME, out)
    assert cert.verify_directory(out).ok
    (out / "model.gguf").unlink()
    (out / "model.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    result = cert.verify_directory(out)
    assert not result.ok and "model.gguf" in result.failed()[0].reason


def test_sealed_manifest_drops_only_the_seal(cert: Certification, store: Store) -> None:
    _seal(cert)
    manifest = store.resolve(names.parse(NAME)).manifest
    base = sealed_manifest(manifest)
    assert manifest.first(mt.SEAL) is not None and base.first(mt.SEAL) is None
    assert len(base.layers) == len(manifest.layers) - 1


def test_registry_routes(cert: Certification, store: Store, tmp_path: Path, catalog_url: str | None) -> None:
    from fastapi.testclient import TestClient

    from openzoo.app import create_app
    from openzoo.services import Services

    _seal(cert)
    home = store.home
    store.close()
    app = create_app(Services(config.load({"OPENZOO_HOME": str(home), "OPENZOO_CATALOG_URL": catalog_url or ""})))
    with TestClient(app, base_url="http://127.0.0.1:11434") as client:
        manifest = client.get("/v2/library/tiny/manifests/1")
        assert manifest.status_code == 200
        digest = manifest.json()["layers"][0]["digest"]
        part = client.get(f"/v2/library/tiny/blobs/{digest}", headers={"Range": "bytes=0-3"})
        assert part.status_code == 206 and part.content == b"GGUF"
        assert client.get(f"/v2/library/tiny/blobs/{digest}", headers={"Range": "bytes=99999999-"}).status_code == 416
        assert client.head(f"/v2/library/tiny/blobs/{digest}").status_code == 200
        assert client.post("/v2/library/tiny/blobs/uploads/").status_code == 403  # no OPENZOO_API_KEY: no pushes
        assert client.get("/zoo/log/head").text.startswith("openzoo/")
        entries = client.get("/zoo/log/entries", params={"kind": "approval"}).json()["entries"]
        assert len(entries) == 2
        proof = client.get("/zoo/log/proof/inclusion", params={"index": entries[0]["index"]}).json()
        assert proof["kind"] == "approval"
        assert "proof" in client.get("/zoo/log/proof/consistency", params={"old": 1}).json()
        assert client.get("/zoo/models/tiny:1/seal").json()["receipt"]["kind"] == "seal"
        assert "apache-2.0" in client.get("/zoo/models/tiny:1/card").json()["markdown"]
        assert client.get("/zoo/requests", params={"status": "all"}).json()["requests"][0]["status"] == "sealed"
        assert "BEGIN PUBLIC KEY" in client.get("/zoo/keys/zoo").text


def test_default_card_body_is_unchanged() -> None:
    """The default model's drafted card is sealed by digest: its text must stay byte for byte."""
    from openzoo.certify.evidence import _default_body
    from openzoo.facts.licenses import describe, lookup

    assert _default_body({"general.parameter_count": 268098176}, "gemma") == (
        "# Gemma 3 270M\n\nGemma 3 270M **base model** (pretrained, not instruction-tuned) by Google DeepMind, "
        "quantized to GGUF Q4_K_M. Base model: `google/gemma-3-270m`.\n\n## Model details\n\n"
        "- Architecture: gemma3\n- Parameters: 268098176\n- Quantization: Q4_K_M (GGUF)\n"
        "- Source: https://huggingface.co/google/gemma-3-270m\n\n## License\n\n"
        f"{describe(lookup('gemma'))}.\n\nGemma Terms of Use: https://ai.google.dev/gemma/terms\n\n"
        "## Evaluation results\n\nNot provided.\n\n## Training data\n\nNot provided.\n"
    )


def test_card_or_draft_tells_a_stored_card_from_a_draft(cert: Certification) -> None:
    draft, stored = cert.card_or_draft(NAME)
    assert not stored and cert.card(NAME) is None and draft == cert.draft_card(NAME)
    assert cert.ensure_card(NAME) == draft
    card, stored = cert.card_or_draft(NAME)
    assert stored and card == draft


def test_a_second_pull_replaces_the_pull_record(cert: Certification) -> None:
    name = names.parse("peer.example/library/x:1")
    cert.record_pull(name, source="a.example", zoo=None, certified=False, manifest_digest="sha256:1", receipt=None,
                     revocations=[], head=None)
    cert.record_pull(name, source="b.example", zoo="zoo-b", certified=True, manifest_digest="sha256:2",
                     receipt=None, revocations=[{"reason": "r"}], head="h")
    assert cert.pulled(name) == {"source": "b.example", "zoo": "zoo-b", "certified": True,
                                 "manifest_digest": "sha256:2", "receipt": None, "revocations": [{"reason": "r"}],
                                 "head": "h"}
