"""Whether a pulled model is certified: one verification for every way a model arrives.

A seal bundle proves little alone; with a signed log head, the seal's inclusion receipt under it, the
revocations logged since and the receipts of the approvals it counts, it proves that a zoo we pinned
(``openzoo keys trust``) sealed exactly this manifest after a reviewer quorum and has not revoked it.
The zoo-to-zoo client fetches those pieces from the other zoo's ``/zoo`` endpoints; an OCI registry
carries them as a *proof* artifact beside the model (:func:`build_proof` writes it, :func:`proof_evidence`
reads it). Both end in :func:`verify_sealed`, offline, against pinned keys.

A certified pull remembers its proof (table ``registry_proofs``, migration 600), so a zoo can pass a
model sealed elsewhere on to an OCI registry with the complete evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openzoo.certify.checkpoint import Checkpoint, parse_note, verify_checkpoint
from openzoo.certify.keys import PublicKey
from openzoo.certify.log import LogReceipt
from openzoo.certify.merkle import verify_consistency
from openzoo.certify.requests import seal_predicate
from openzoo.certify.service import Certification
from openzoo.certify.verification import check_logged_approvals
from openzoo.errors import InvalidRequest, OpenzooError, VerificationFailed
from openzoo.facts.canonical import canonical_json, parse_json
from openzoo.store import migrations
from openzoo.store.db import Database
from openzoo.store.manifests import Manifest

__all__ = ["SealEvidence", "Verdict", "build_proof", "proof_evidence", "remember_proof", "verify_sealed"]

PROOF_VERSION = 1


def _m600(conn: Database) -> None:
    migrations.run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS registry_proofs (
            manifest_digest TEXT PRIMARY KEY,
            proof TEXT NOT NULL,
            stored_at REAL NOT NULL
        )
        """,
    )


MIGRATION = migrations.Step(600, "registry: the seal proofs of pulled models", _m600)


@dataclass(frozen=True)
class SealEvidence:
    """What a verifier needs beside the seal bundle. ``approvals(bundle, size)`` returns the receipts of the
    sealed request's approvals under a tree of ``size``; ``consistency(old, new)`` a consistency proof."""

    head: str
    receipt: LogReceipt
    revocations: list[dict[str, Any]]
    approvals: Callable[[Mapping[str, Any], int], list[LogReceipt]]
    consistency: Callable[[int, int], list[bytes]]


@dataclass(frozen=True)
class Verdict:
    """The outcome: certified or not, by which pinned zoo, why, and the evidence to record with the pull."""

    certified: bool
    zoo: str | None
    reason: str
    receipt: LogReceipt | None = None
    revocations: list[dict[str, Any]] = field(default_factory=list)
    head: str | None = None
    approvals: list[LogReceipt] = field(default_factory=list)

    def proof(self) -> dict[str, Any] | None:
        """The proof document of a certified verdict (what an OCI push attaches), else None."""
        if not self.certified or self.receipt is None:
            return None
        return {"version": PROOF_VERSION, "receipt": self.receipt.to_json(),
                "approvals": [r.to_json() for r in self.approvals], "revocations": list(self.revocations)}


def verify_sealed(cert: Certification, manifest: Manifest, bundle: Mapping[str, Any], evidence: SealEvidence,
                  keys: Sequence[PublicKey]) -> Verdict:
    """Verify a sealed manifest offline: a trusted key signed the head, the seal receipt is consistent with
    it, and the seal's signature, files, card, policy, quorum, log inclusion, revocations and logged
    approvals all check out."""
    signer: PublicKey | None = None
    cp: Checkpoint | None = None
    for key in keys:
        try:
            cp = verify_checkpoint(evidence.head, [key])
        except OpenzooError:
            continue
        signer = key
        break
    if signer is None or cp is None:
        return Verdict(False, None, "the log head is not signed by a trusted zoo key (run 'openzoo keys trust')",
                       head=evidence.head)
    receipt = evidence.receipt
    try:
        if receipt.size != cp.size:
            rcp = Checkpoint.parse_body(parse_note(receipt.checkpoint).text)
            proof = evidence.consistency(rcp.size, cp.size) if rcp.size < cp.size else []
            if not verify_consistency(rcp.size, cp.size, rcp.root_hash, cp.root_hash, proof):
                return Verdict(False, signer.name, "the log head is not consistent with the seal receipt (fork)",
                               head=evidence.head)
        checks, _ = cert.check_seal(manifest, bundle, receipt, evidence.revocations, zoo_keys=[signer])
        approvals = evidence.approvals(bundle, cp.size)
        checks.append(check_logged_approvals(bundle, approvals, [signer]))
    except (OpenzooError, KeyError, TypeError, ValueError) as exc:
        return Verdict(False, None, f"the seal cannot be verified: {exc}", head=evidence.head)
    failed = [c for c in checks if not c.ok]
    if failed:
        return Verdict(False, signer.name, "; ".join(f"{c.name}: {c.reason}" for c in failed), receipt,
                       evidence.revocations, evidence.head)
    quorum = next((c.reason for c in checks if c.name == "quorum"), "")
    return Verdict(True, signer.name, f"seal, quorum ({quorum}) and log inclusion verified", receipt,
                   evidence.revocations, evidence.head, approvals)


def proof_evidence(proof: Any) -> SealEvidence:
    """Read a proof document (from an OCI proof artifact): its receipt's checkpoint is the head, and every
    approval receipt it carries is offered to the approvals check."""
    if not isinstance(proof, dict) or proof.get("version") != PROOF_VERSION:
        raise VerificationFailed("the proof artifact is not an openzoo proof (version 1)")
    try:
        receipt = LogReceipt.from_json(proof["receipt"])
        approvals = [LogReceipt.from_json(r) for r in proof.get("approvals", [])]
        revocations = [r for r in proof.get("revocations", []) if isinstance(r, dict)]
    except (KeyError, TypeError, InvalidRequest) as exc:
        raise VerificationFailed(f"malformed proof artifact: {exc}") from exc

    def no_consistency(old: int, new: int) -> list[bytes]:
        raise VerificationFailed("the proof's receipts are under different tree heads")

    return SealEvidence(receipt.checkpoint, receipt, revocations, lambda _bundle, _size: approvals, no_consistency)


def build_proof(cert: Certification, manifest_digest: str, bundle: Mapping[str, Any]) -> dict[str, Any] | None:
    """The proof to publish beside a sealed model: for a seal of this zoo, fresh receipts of the seal and its
    approvals under the current signed head and the revocations logged since; for a seal pulled from
    another zoo, the proof remembered at the pull. None when there is none (then pullers refuse it)."""
    pred = seal_predicate(bundle)
    log = pred.get("log")
    if isinstance(log, dict) and log.get("origin") == cert.log.origin:
        index = int(log["index"])
        head = cert.head()
        receipt = cert.log.receipt(index, head)
        request_id = pred.get("requestId")
        approvals = [cert.log.receipt(e.index, head) for e in cert.log.entries(0, receipt.size, kind="approval")
                     if e.index < receipt.size and isinstance(e.body, dict) and e.body.get("request_id") == request_id]
        return {"version": PROOF_VERSION, "receipt": receipt.to_json(), "approvals": [a.to_json() for a in approvals],
                "revocations": cert.revocations(receipt.size, after=index)}
    row = cert.store.catalog.connection.execute(
        "SELECT proof FROM registry_proofs WHERE manifest_digest = ?", (manifest_digest,)).fetchone()
    if row is None:
        return None
    found = parse_json(row[0], "stored proof")
    return found if isinstance(found, dict) else None


def remember_proof(cert: Certification, manifest_digest: str, verdict: Verdict) -> None:
    """Keep a certified pull's proof, so that pushing the model on carries the same evidence."""
    proof = verdict.proof()
    if proof is None:
        return
    with cert.store.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO registry_proofs (manifest_digest, proof, stored_at) VALUES (?, ?, ?) "
            "ON CONFLICT (manifest_digest) DO UPDATE SET proof = excluded.proof, stored_at = excluded.stored_at",
            (manifest_digest, canonical_json(proof).decode(), time.time()),
        )
