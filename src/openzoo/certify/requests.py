"""Certification requests, reviewer approvals, seals and revocations: the steps that write the log.

A seal is stored as a SEAL layer holding a bundle ``{envelope, receipt, policy}``. The seal signs the
manifest *without* its SEAL layer, so a verifier drops that layer, re-digests the manifest and compares.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openzoo import names
from openzoo.certify.core import Trust, ZooKeys, ZooLog, layer_label, now_ms, sealed_digest
from openzoo.certify.dsse import Envelope
from openzoo.certify.evidence import Evidence
from openzoo.certify.policy import (
    Approval,
    ApprovalTally,
    Policy,
    QuorumResult,
    count_approvals,
    sign_approval,
)
from openzoo.certify.seal import build_seal, revocation_body, seal_digest
from openzoo.errors import Conflict, NotFound, ScanBlocked, VerificationFailed
from openzoo.facts.canonical import canonical_json, parse_json, sha256_digest
from openzoo.facts.licenses import describe
from openzoo.names import ModelName
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer
from openzoo.store.store import Store


@dataclass
class CertifyRequest:
    """An open (or finished) certification request with its evidence."""

    id: str
    model: str
    manifest_digest: str
    status: str
    evidence: dict[str, Any]
    created_at: float
    approvals: list[str] = field(default_factory=list)
    threshold: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "manifest_digest": self.manifest_digest,
            "status": self.status,
            "created_at": self.created_at,
            "approvals": list(self.approvals),
            "threshold": self.threshold,
            "evidence": self.evidence,
        }


class Seals:
    """Certification requests, reviewers' approvals, the seals they make and revocations: every step logged."""

    def __init__(self, store: Store, keys: ZooKeys, trust: Trust, zoo_log: ZooLog, evidence: Evidence) -> None:
        self.store = store
        self.conn = store.catalog.connection
        self.keys = keys
        self.trust = trust
        self.zoo_log = zoo_log
        self.evidence = evidence

    # -- requests --------------------------------------------------------------------------------
    def request(self, name: str) -> CertifyRequest:
        """Card checks, openness grading, license facts and the scan, then open a logged request."""
        parsed = names.parse(name)
        self.evidence.ensure_card(name)
        facts = self.evidence.license_facts(name)
        blob = self.store.blobs.put_bytes(canonical_json(facts.to_json()))
        current = self.store.resolve(parsed).manifest
        existing = current.first(mt.LICENSE_FACTS)
        if existing is None or existing.digest != blob.digest:
            self.evidence.replace_layers(name, {mt.LICENSE_FACTS: [Layer(mt.LICENSE_FACTS, blob.digest, blob.size)]})
        stored = self.store.resolve(parsed)
        if stored.manifest.first(mt.SEAL) is not None:
            if self.requests(parsed.display, status="sealed") or not self.requests(parsed.display, status="revoked"):
                raise Conflict(f"{parsed.display} is already sealed", hint="revoke it first to certify it again")
            self.evidence.replace_layers(name, {mt.SEAL: []})  # a revoked seal: certify the unsealed manifest afresh
            stored = self.store.resolve(parsed)
        for req in self.requests(parsed.display, status="open"):
            if req.manifest_digest == stored.digest:
                return req
        card = self.evidence.card(name)
        assert card is not None
        problems = self.evidence.card_problems(name, card)
        openness = self.evidence.openness(name)
        scan = self.evidence.scan(name)
        evidence: dict[str, Any] = {
            "card": {"digest": sha256_digest(card.render().encode()), "problems": problems,
                     "license": describe(facts)},
            "openness": openness.to_json(),
            "openness_explained": openness.explain(),
            "license": facts.to_json(),
            "license_summary": describe(facts),
            "scan": scan.summary(),
        }
        status = "blocked" if scan.blocked else "open"
        request_id = hashlib.sha256(f"{parsed.key}|{stored.digest}|{time.time_ns()}".encode()).hexdigest()[:24]
        body = {
            "request_id": request_id,
            "model": parsed.display,
            "manifest_digest": stored.digest,
            "card_digest": evidence["card"]["digest"],
            "openness": openness.to_json()["class"],
            "license": facts.id,
            "scan": {"counts": scan.counts(), "blocked": scan.blocked},
            "status": status,
        }
        key = self.keys.zoo_key()
        now = time.time()
        with self.zoo_log.transaction():
            index = self.zoo_log.log.append("request", body)
            self.zoo_log.log.sign_head(key)
            self.conn.execute(
                "INSERT INTO certify_requests(id, model_key, model, manifest_digest, status, evidence, log_index, "
                "created_at) VALUES (?,?,?,?,?,?,?,?)",
                (request_id, parsed.key, parsed.display, stored.digest, status, json.dumps(evidence), index, now),
            )
        if scan.blocked:
            critical = [f for f in scan.findings if f.severity == "critical"]
            raise ScanBlocked(
                f"certification of {parsed.display} is blocked by the safety scan: "
                + "; ".join(f"{f.file}: {f.message}" for f in critical),
                hint="a critical finding cannot be approved",
            )
        return self._request_row(request_id)

    def _request_row(self, request_id: str) -> CertifyRequest:
        row = self.conn.execute(
            "SELECT id, model, manifest_digest, status, evidence, created_at FROM certify_requests WHERE id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no certification request {request_id}")
        req = CertifyRequest(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])
        try:
            policy = self.trust.policy()
            result = self.quorum(req, policy)
            req.approvals, req.threshold = list(result.reviewers), policy.threshold
        except NotFound:
            pass
        return req

    def requests(self, name: str | None = None, status: str | None = None) -> list[CertifyRequest]:
        sql, args = "SELECT id FROM certify_requests WHERE 1=1", []
        if name is not None:
            sql += " AND model_key = ?"
            args.append(names.parse(name).key)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self.conn.execute(sql + " ORDER BY created_at DESC", args).fetchall()
        return [self._request_row(r[0]) for r in rows]

    def open_request(self, name: str) -> CertifyRequest:
        found = self.requests(name, status="open")
        if not found:
            raise NotFound(
                f"no open certification request for {names.parse(name).display}",
                hint=f"run 'openzoo certify request {name}'",
            )
        return found[0]

    def approvals(self, request_id: str) -> list[Approval]:
        out = []
        for entry in self.zoo_log.log.entries(0, 1 << 62, kind="approval"):
            if isinstance(entry.body, dict) and entry.body.get("request_id") == request_id:
                out.append(Approval.from_json(entry.body))
        return out

    def quorum(self, req: CertifyRequest, policy: Policy) -> QuorumResult:
        return count_approvals(
            self.approvals(req.id), policy, model=req.model, manifest_digest=req.manifest_digest, request_id=req.id
        )

    def approve(self, name: str, key_name: str) -> tuple[QuorumResult, Envelope | None]:
        """A reviewer's signed approval; the seal is issued when k approvals exist."""
        parsed = names.parse(name)
        policy = self.trust.policy()
        req = self.open_request(name)
        current = self.store.resolve(parsed).digest
        if current != req.manifest_digest:
            raise Conflict(
                f"{parsed.display} changed since the certification request",
                hint=f"run 'openzoo certify request {name}' again",
            )
        key = self.keys.reviewer_signing_key(key_name)
        if policy.reviewer(key.key_id) is None:
            raise VerificationFailed(
                f"key {key_name!r} is not a reviewer in certification policy v{policy.version}",
                hint="only reviewers listed in the current policy can approve",
            )
        tally = ApprovalTally(policy, req.model, req.manifest_digest, req.id, self.approvals(req.id))
        approval = sign_approval(key, model=req.model, manifest_digest=req.manifest_digest, request_id=req.id)
        reviewer = tally.add(approval)
        body = {**approval.to_json(), "reviewer": reviewer.name}
        self.zoo_log.log_event("approval", body)
        result = tally.result()
        if not result.met:
            return result, None
        return result, self._issue_seal(parsed, req, policy, tally.approvals)

    def _issue_seal(self, parsed: ModelName, req: CertifyRequest, policy: Policy,
                    approvals: Sequence[Approval]) -> Envelope:
        manifest = self.store.resolve(parsed).manifest
        card_layer = manifest.card_layer()
        layers = [("config", manifest.config.digest)] + [(layer_label(x.media_type), x.digest) for x in manifest.layers]
        evidence = req.evidence
        key = self.keys.zoo_key()
        with self.zoo_log.transaction():
            index = self.zoo_log.log.size()
            envelope = build_seal(
                key,
                model=req.model,
                manifest_digest=req.manifest_digest,
                layers=layers,
                card_digest=card_layer.digest if card_layer else "",
                openness=evidence["openness"],
                license_facts=evidence["license"],
                scan_summary=evidence["scan"],
                approvals=approvals,
                policy=policy,
                request_id=req.id,
                log_index=index,
                issued_at=now_ms(),
                audit_digests={x.digest: "audit" for x in manifest.layers_of(mt.AUDIT)},
                log_origin=self.zoo_log.log.origin,
            )
            self.zoo_log.log.append("seal", envelope.to_json(), expected_index=index)
            self.zoo_log.log.sign_head(key)
            receipt = self.zoo_log.log.receipt(index)
            bundle = {"envelope": envelope.to_json(), "receipt": receipt.to_json(), "policy": policy.to_json()}
            self.conn.execute(
                "UPDATE certify_requests SET status = 'sealed', seal = ? WHERE id = ?",
                (canonical_json(bundle).decode(), req.id),
            )
        blob = self.store.blobs.put_bytes(canonical_json(bundle))
        self.evidence.replace_layers(parsed.display, {mt.SEAL: [Layer(mt.SEAL, blob.digest, blob.size)]})
        return envelope

    def seal_bundle(self, name: str) -> dict[str, Any]:
        manifest = self.store.resolve(names.parse(name)).manifest
        layer = manifest.first(mt.SEAL)
        if layer is None:
            raise NotFound(f"{names.parse(name).display} has no seal", hint=f"run 'openzoo certify request {name}'")
        data = parse_json(self.store.blobs.read(layer.digest), "seal")
        if not isinstance(data, dict):
            raise VerificationFailed("the seal layer is not a seal bundle")
        return data

    def revoke(self, name: str, reason: str) -> int:
        parsed = names.parse(name)
        stored = self.store.resolve(parsed)
        bundle = self.seal_bundle(name)
        envelope = Envelope.from_json(bundle["envelope"])
        body = revocation_body(parsed.display, sealed_digest(stored.manifest), seal_digest(envelope), reason,
                               now_ms())
        index = self.zoo_log.log_event("revocation", body)
        with self.zoo_log.transaction():
            self.conn.execute(
                "UPDATE certify_requests SET status = 'revoked' WHERE model_key = ? AND status = 'sealed'",
                (parsed.key,),
            )
        return index

    def revocations(self, upto: int | None = None, after: int = -1) -> list[dict[str, Any]]:
        """Revocation bodies logged after entry ``after`` (a seal's index) and before ``upto``."""
        out = []
        for entry in self.zoo_log.log.entries(after + 1, 1 << 62, kind="revocation"):
            if (upto is None or entry.index < upto) and isinstance(entry.body, dict):
                out.append(entry.body)
        return out


def seal_predicate(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The seal predicate, read without checking the signature (only to route the verification)."""
    from openzoo.certify.dsse import parse_statement

    try:
        env = Envelope.from_json(bundle["envelope"])
        pred = parse_statement(env.payload)["predicate"]
    except (KeyError, TypeError) as exc:
        raise VerificationFailed(f"malformed seal: {exc}") from exc
    return pred if isinstance(pred, dict) else {}

