"""Offline verification: stored blobs re-hashed, the seal's signature, quorum, log inclusion and
revocations checked against pinned keys, and OpenSSF model-signing directories.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.certify.checkpoint import Checkpoint, parse_note, verify_checkpoint
from openzoo.certify.core import Trust, ZooKeys, ZooLog, layer_label, sealed_manifest
from openzoo.certify.cosignature import verify_cosignatures
from openzoo.certify.dsse import Envelope
from openzoo.certify.keys import PublicKey
from openzoo.certify.log import LogReceipt, verify_receipt
from openzoo.certify.policy import (
    Approval,
    Policy,
)
from openzoo.certify.requests import Seals, seal_predicate
from openzoo.certify.seal import Check, verify_seal
from openzoo.errors import NotFound, OpenzooError, VerificationFailed
from openzoo.facts.canonical import canonical_json, parse_json, sha256_digest
from openzoo.facts.datafiles import check_filename
from openzoo.facts.dataset_config import FILENAME
from openzoo.names import ModelName
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store


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


class Verifier:
    """Offline checks of stored models against their seals, the log and the policy; the pulls it accepted."""

    def __init__(self, store: Store, keys: ZooKeys, trust: Trust, zoo_log: ZooLog, seals: Seals) -> None:
        self.store = store
        self.catalog = store.catalog
        self.conn = store.catalog.connection
        self.keys = keys
        self.trust = trust
        self.zoo_log = zoo_log
        self.seals = seals

    # -- verification ----------------------------------------------------------------------------
    def check_files(self, manifest_digest: str, manifest: Manifest) -> Check:
        """Every blob's digest, re-hashed unless it was verified since it last changed (``verified_at``)."""
        problems: list[str] = []
        items = [("manifest", manifest_digest), ("config", manifest.config.digest)]
        items += [(layer_label(x.media_type), x.digest) for x in manifest.layers]
        for label, digest in items:
            problem = self.check_blob(digest)
            if problem:
                problems.append(f"{label} blob {digest[:19]}… {problem}")
        if problems:
            return Check("digests", "fail", "; ".join(problems))
        return Check("digests", "pass", f"{len(items)} stored blobs match their digests")

    def check_blob(self, digest: str) -> str | None:
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
        with self.zoo_log.transaction():
            self.conn.execute(
                "INSERT INTO certify_pulled(model_key, source, zoo, certified, manifest_digest, receipt, "
                "revocations, head, pulled_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (model_key) DO UPDATE SET "
                "source = excluded.source, zoo = excluded.zoo, certified = excluded.certified, "
                "manifest_digest = excluded.manifest_digest, receipt = excluded.receipt, "
                "revocations = excluded.revocations, head = excluded.head, pulled_at = excluded.pulled_at",
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
            bundle = self.seals.seal_bundle(name)
        except OpenzooError as exc:
            result.checks.append(Check("seal", "fail", f"the seal layer is unreadable: {exc}"))
            return result
        receipt: LogReceipt | None = None
        revocations: Sequence[Mapping[str, Any]] = ()
        local = False
        try:
            stmt_log = seal_predicate(bundle).get("log", {})
            local = isinstance(stmt_log, dict) and stmt_log.get("origin") == self.zoo_log.log.origin
        except OpenzooError:
            local = False
        try:
            if local:
                index = int(stmt_log["index"])
                receipt = self.zoo_log.log.receipt(index, self.zoo_log.head())
                revocations = self.seals.revocations(receipt.size, after=index)
            elif pulled is not None and pulled["receipt"]:
                receipt = LogReceipt.from_json(pulled["receipt"])
                revocations = pulled["revocations"]
            else:
                receipt = LogReceipt.from_json(bundle["receipt"])
        except (OpenzooError, KeyError, TypeError, ValueError) as exc:
            result.checks.append(Check("log inclusion", "fail", f"no usable log receipt: {exc}"))
        checks, signer = self.check_seal(stored.manifest, bundle, receipt, revocations)
        result.checks += checks
        witnessed = witness_check(self.trust, bundle, receipt, local) if receipt is not None else None
        if witnessed is not None:  # the policy names witnesses: k of them cosigned a head with the seal
            result.checks.append(witnessed)
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
        card = base.card_layer()
        policies = self.trust.policies()
        with contextlib.suppress(OpenzooError):
            policies.insert(0, Policy.from_json(bundle.get("policy")))
        keys = list(zoo_keys) if zoo_keys is not None else self.keys.zoo_keys()
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
                signer = next((self.keys.key_name(k) for k in keys
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
            cp = verify_checkpoint(checkpoint, [self.keys.zoo_public()], self.zoo_log.log.origin)
            request_id = seal_predicate(bundle).get("requestId")
        except OpenzooError as exc:
            return Check("approvals logged", "fail", str(exc))
        log = self.zoo_log.log
        receipts = [log.receipt(e.index, checkpoint) for e in log.entries(0, cp.size, kind="approval")
                    if isinstance(e.body, dict) and e.body.get("request_id") == request_id]
        return check_logged_approvals(bundle, receipts, [self.keys.zoo_public()])

    def _pending_checks(self, parsed: ModelName, result: VerifyResult) -> None:
        reqs = self.seals.requests(parsed.display)
        if not reqs:
            result.checks.append(Check("seal", "fail", f"not certified: no certification request for "
                                                       f"{parsed.display}"))
            return
        req = reqs[0]
        try:
            policy = self.trust.policy()
            quorum = self.seals.quorum(req, policy)
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
        names_for = {mt.MODEL: "model.gguf", mt.CARD: "README.md", mt.DATASHEET: "README.md", mt.LICENSE: "LICENSE",
                     mt.TEMPLATE: "template.jinja", mt.PARAMS: "params.json", mt.SYSTEM: "system.txt",
                     mt.LICENSE_FACTS: "license-facts.json", mt.SEAL: "openzoo-seal.json"}
        for i, layer in enumerate(manifest.layers):
            fname = names_for.get(layer.media_type, f"layer-{i}")
            if layer in manifest.data_layers():  # a dataset's files keep their names (checked safe at import)
                fname = check_filename(layer.annotations.get(FILENAME, fname))
                (directory / fname).parent.mkdir(parents=True, exist_ok=True)
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
            if self.check_blob("sha256:" + digest):
                raise VerificationFailed(f"{fname} in the store is damaged; not signing it")
        bundle = sign_model_dir(directory, self.keys.zoo_key(), files=files)
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
        for key in self.keys.zoo_keys():
            try:
                signed = verify_model_dir(directory, sig.read_bytes(), key)
            except VerificationFailed as exc:
                errors.append(f"{self.keys.key_name(key)}: {exc.message}")
                continue
            result.checks.append(Check("signature", "pass", f"model-signing bundle by {self.keys.key_name(key)}"))
            result.checks.append(Check("files", "pass", f"{len(signed.files)} file digests match"))
            result.certified_by = self.keys.key_name(key)
            return result
        result.checks.append(Check("signature", "fail", "; ".join(errors) or "no trusted zoo key"))
        return result


def check_logged_approvals(bundle: Mapping[str, Any], receipts: Sequence[LogReceipt],
                           keys: Sequence[PublicKey]) -> Check:
    """Each approval counted in a seal must be a log entry whose receipt verifies (its body recomputes to the
    logged leaf under a signed head) and carries the same signature."""
    try:
        pred = seal_predicate(bundle)
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


def witness_check(trust: Trust, bundle: Mapping[str, Any], receipt: LogReceipt, local: bool) -> Check | None:
    """``witnesses``: k of the policy's witnesses cosigned a head that includes the seal; None when the policy
    (the seal's own, else the zoo's latest) names no witnesses.

    For a model sealed here the head is the latest cosigned one of this zoo's log that covers the seal (the
    entry's inclusion under it is proven again); for a pulled model, the head of its receipt, as pulled.
    """
    try:
        policy = Policy.from_json(bundle.get("policy")) if bundle.get("policy") else trust.policy()
    except OpenzooError:
        return None
    if not policy.witness_threshold:
        return None
    note = receipt.checkpoint
    try:
        if local:
            note = trust.zoo_log.witnesses.latest_cosigned(receipt.index) or note
            log = trust.zoo_log.log
            verify_receipt(log.receipt(receipt.index, note), trust.keys.zoo_keys(), log.origin)
        found = verify_cosignatures(note, policy.witness_keys())
    except OpenzooError as exc:
        return Check("witnesses", "fail", f"the witnessed head cannot be checked: {exc}")
    k, n = policy.witness_threshold, len(policy.witnesses)
    names = ", ".join(sorted(c.witness.name for c in found)) or "none"
    if len(found) < k:
        return Check("witnesses", "fail", f"{len(found)} of the {k} witness cosignatures the policy requires "
                     f"(of {n}; cosigned by: {names}); witnesses cosign new heads within seconds of "
                     "'openzoo serve' asking them, or run 'openzoo witness cosign'")
    size = Checkpoint.parse_body(parse_note(note).text).size
    return Check("witnesses", "pass", f"{len(found)} of {n} witnesses cosigned a head of {size} entries that "
                 f"includes the seal ({names}; {k} required)")
