"""Seals end to end: the issue's quorum scenario and one tamper test per artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openzoo.certify import dsse
from openzoo.certify.dsse import Envelope
from openzoo.certify.keys import SigningKey
from openzoo.certify.log import LogReceipt, TransparencyLog
from openzoo.certify.policy import Approval, ApprovalTally, Policy, create_policy, sign_approval
from openzoo.certify.seal import SEAL_PREDICATE_TYPE, build_seal, revocation_body, seal_digest, verify_seal
from openzoo.errors import Conflict
from openzoo.facts.canonical import sha256_digest

WEIGHTS = b"GGUF fake weights"
CARD = b"---\nlicense: gemma\n---\n# Gemma\n"
MANIFEST = b'{"layers": []}'
REQ = {"model": "gemma3:270m", "manifest_digest": sha256_digest(MANIFEST), "request_id": "req-1"}


@pytest.fixture()
def policy(reviewer_keys: dict[str, SigningKey]) -> Policy:
    return create_policy([reviewer_keys[n].public for n in ("alice", "bob", "carol")], threshold=2)


def _seal(zoo_key: SigningKey, policy: Policy, approvals: list[Approval], index: int = 0, **over: Any) -> Envelope:
    args: dict[str, Any] = {
        "model": REQ["model"],
        "manifest_digest": REQ["manifest_digest"],
        "request_id": REQ["request_id"],
        "layers": [("application/vnd.ollama.image.model", sha256_digest(WEIGHTS))],
        "card_digest": sha256_digest(CARD),
        "openness": {"class": "none", "components": []},
        "license_facts": {"id": "LicenseRef-Gemma"},
        "scan_summary": {"blocked": False, "critical": 0},
        "approvals": approvals,
        "policy": policy,
        "log_index": index,
        "issued_at": 1,
    }
    args.update(over)
    return build_seal(zoo_key, **args)


def _verify(env: Any, zoo_key: SigningKey, policy: Policy | list[Policy], **kw: Any) -> Any:
    defaults: dict[str, Any] = {
        "manifest_digest": REQ["manifest_digest"],
        "layer_digests": [sha256_digest(WEIGHTS)],
        "card_digest": sha256_digest(CARD),
    }
    defaults.update(kw)
    return verify_seal(env, [zoo_key.public], policy, **defaults)


def test_scenario(tmp_path: Path, zoo_key: SigningKey, reviewer_keys: dict[str, SigningKey], policy: Policy) -> None:
    tally = ApprovalTally(policy, REQ["model"], REQ["manifest_digest"], REQ["request_id"])
    tally.add(sign_approval(reviewer_keys["alice"], **REQ))
    with pytest.raises(Conflict, match="1 of 2"):
        _seal(zoo_key, policy, tally.approvals)
    with pytest.raises(Conflict, match="already approved by alice"):
        tally.add(sign_approval(reviewer_keys["alice"], **REQ))
    tally.add(sign_approval(reviewer_keys["bob"], **REQ))
    log = TransparencyLog(tmp_path / "log.db")
    log.append("policy", policy.to_json())
    index = log.size()
    env = _seal(zoo_key, policy, tally.approvals, index=index)
    assert log.append("seal", env.to_json(), expected_index=index) == index
    log.sign_head(zoo_key)
    receipt = LogReceipt.from_json(log.receipt(index).to_json())
    report = _verify(env.to_bytes(), zoo_key, policy, receipt=receipt)
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == [
        "seal signature",
        "statement",
        "manifest",
        "files",
        "card",
        "scan",
        "policy",
        "quorum",
        "log inclusion",
        "revocation",
    ]
    assert report.check("quorum").reason.startswith("2 of 2 approvals (alice, bob)")
    # a seal carrying only one approval (forged by a zoo that skipped the quorum) fails verification
    lone = Envelope.from_json(
        _seal(zoo_key, create_policy([reviewer_keys["alice"].public], 1), tally.approvals[:1]).to_bytes()
    )
    bad = _verify(lone, zoo_key, policy)
    assert {c.name for c in bad.failed()} == {"policy", "quorum"}
    assert "not a trusted policy" in bad.check("policy").reason
    lying = _seal_unchecked(zoo_key, policy, tally.approvals[:1])  # claims the real policy
    assert [c.name for c in _verify(lying, zoo_key, policy).failed()] == ["quorum"]
    assert "1 of 2 approvals" in _verify(lying, zoo_key, policy).check("quorum").reason
    # after a policy rotation, a seal made under v1 verifies against the trusted chain [v1, v2]
    v2 = create_policy([reviewer_keys["carol"].public], 1, version=2)
    assert _verify(env, zoo_key, [policy, v2], receipt=receipt).ok
    assert not _verify(env, zoo_key, [v2]).ok
    # revocation
    rev = revocation_body(REQ["model"], REQ["manifest_digest"], seal_digest(env), "license changed", 2)
    revoked = _verify(env, zoo_key, policy, receipt=receipt, revocations=[rev])
    assert [c.name for c in revoked.failed()] == ["revocation"]
    assert "license changed" in revoked.check("revocation").reason


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_tampering(tmp_path: Path, zoo_key: SigningKey, reviewer_keys: dict[str, SigningKey], policy: Policy) -> None:
    approvals = [sign_approval(reviewer_keys[n], **REQ) for n in ("alice", "bob")]
    log = TransparencyLog(tmp_path / "log.db")
    env = _seal(zoo_key, policy, approvals)
    log.append("seal", env.to_json(), expected_index=0)
    log.sign_head(zoo_key)
    receipt = log.receipt(0)

    def failed(**kw: Any) -> set[str]:
        return {c.name for c in _verify(kw.pop("env", env), zoo_key, policy, **kw).failed()}

    assert failed(receipt=receipt) == set()
    assert failed(layer_digests=[sha256_digest(_flip(WEIGHTS, 3))]) == {"files"}
    assert failed(card_digest=sha256_digest(_flip(CARD, 5))) == {"card"}
    assert failed(manifest_digest=sha256_digest(_flip(MANIFEST, 1))) == {"manifest"}
    flipped_payload = Envelope(env.payload_type, _flip(env.payload, 40), env.signatures)
    assert failed(env=flipped_payload) == {"seal signature"}
    assert failed(env=_flip(env.to_bytes(), 10)) == {"seal signature"}
    # an approval signature altered inside a seal re-signed by the zoo key still fails the quorum
    bad_approval = Approval(**{**approvals[1].__dict__, "signature": _flip(approvals[1].signature, 8)})
    assert failed(env=_seal_unchecked(zoo_key, policy, [approvals[0], bad_approval])) == {"quorum"}
    # log entry / tree head tampering
    other = dict(receipt.__dict__)
    assert failed(receipt=LogReceipt(**{**other, "timestamp": receipt.timestamp + 1})) == {"log inclusion"}
    head = receipt.checkpoint.replace("\n1\n", "\n2\n")
    assert failed(receipt=LogReceipt(**{**other, "checkpoint": head})) == {"log inclusion"}
    assert failed(receipt=LogReceipt(**{**other, "index": 1})) == {"log inclusion"}
    assert (
        "signature"
        in _verify(env, zoo_key, policy, receipt=LogReceipt(**{**other, "checkpoint": head}))
        .check("log inclusion")
        .reason
    )
    assert _verify(env, reviewer_keys["bob"], policy).check("seal signature").status == "fail"


def _seal_unchecked(zoo_key: SigningKey, policy: Policy, approvals: list[Approval]) -> Envelope:
    """Sign a seal whose approvals were never checked (what a compromised zoo key could do)."""
    env = _seal(zoo_key, create_policy(policy.public_keys()[:1], 1), approvals[:1])
    stmt = dsse.parse_statement(env.payload)
    stmt["predicate"]["approvals"] = [a.to_json() for a in approvals]
    stmt["predicate"]["policy"] = {"digest": policy.digest(), "version": 1, "threshold": 2}
    payload = dsse.statement(stmt["subject"], SEAL_PREDICATE_TYPE, stmt["predicate"])
    return dsse.sign_envelope(dsse.IN_TOTO_PAYLOAD_TYPE, payload, [zoo_key])


def test_refuses_blocked_scan(zoo_key: SigningKey, reviewer_keys: dict[str, SigningKey], policy: Policy) -> None:
    approvals = [sign_approval(reviewer_keys[n], **REQ) for n in ("alice", "bob")]
    with pytest.raises(Conflict, match="critical"):
        _seal(zoo_key, policy, approvals, scan_summary={"blocked": True, "critical": 1})
