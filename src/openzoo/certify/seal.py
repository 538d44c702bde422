"""The zoo's seal: one signed in-toto Statement binding files, card, grade, scan, quorum and log.

Why one record: each fact alone is weak (a card is self-reported, a signature says nothing about what was
checked). The seal ties the manifest and every layer digest to the card digest, the openness class and
its evidence, the license facts, the scan verdict, audit report digests, the reviewers' own approval
signatures, the policy they were counted under and the seal's place in the transparency log — and
:func:`verify_seal` re-checks all of it offline, reporting each check by name.

Issue flow (for the store/CLI layer)::

    index = log.size()                         # the seal's own log index
    env = build_seal(zoo_key, ..., log_index=index)
    log.append("seal", env.to_json(), expected_index=index)
    log.sign_head(zoo_key); receipt = log.receipt(index)   # keep beside the seal
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openzoo.certify.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    parse_statement,
    sign_envelope,
    statement,
    subject,
    verify_envelope,
)
from openzoo.certify.keys import PublicKey, SigningKey
from openzoo.certify.log import LogReceipt, verify_receipt
from openzoo.certify.policy import Approval, Policy, count_approvals
from openzoo.errors import Conflict, InvalidRequest, OpenzooError, VerificationFailed
from openzoo.facts.canonical import sha256_digest

__all__ = [
    "SEAL_PREDICATE_TYPE",
    "Check",
    "SealReport",
    "build_seal",
    "revocation_body",
    "seal_digest",
    "verify_seal",
]

SEAL_PREDICATE_TYPE = "https://openzoo.dev/seal/v1"
MANIFEST_SUBJECT_PREFIX = "manifest:"
LAYER_SUBJECT_PREFIX = "layer:"


def seal_digest(envelope: Envelope) -> str:
    """``sha256:`` of the envelope's canonical JSON: how revocations and receipts name a seal."""
    return sha256_digest(envelope.to_bytes())


def build_seal(
    zoo_key: SigningKey,
    *,
    model: str,
    manifest_digest: str,
    layers: Sequence[tuple[str, str]],
    card_digest: str,
    openness: Mapping[str, Any],
    license_facts: Mapping[str, Any],
    scan_summary: Mapping[str, Any],
    approvals: Sequence[Approval],
    policy: Policy,
    request_id: str,
    log_index: int,
    issued_at: int,
    audit_digests: Mapping[str, str] | None = None,
    log_origin: str | None = None,
) -> Envelope:
    """Issue a seal signed by the zoo key.

    ``layers`` are ``(name, sha256 digest)`` pairs (name e.g. the layer media type or file name).
    ``openness``, ``license_facts`` and ``scan_summary`` are the JSON forms from :mod:`.openness`,
    :mod:`.licenses` and :mod:`.scan`. Refuses (Conflict) when the approvals do not reach the policy
    threshold or the scan has a blocking finding: the zoo never signs what it would not verify.
    """
    quorum = count_approvals(approvals, policy, model=model, manifest_digest=manifest_digest, request_id=request_id)
    if not quorum.met:
        raise Conflict(f"cannot seal {model}: {quorum.summary()}", hint="more reviewers must approve")
    if scan_summary.get("blocked"):
        raise Conflict(f"cannot seal {model}: the safety scan has critical findings")
    if not layers:
        raise InvalidRequest("a seal needs at least one layer")
    subjects = [subject(MANIFEST_SUBJECT_PREFIX + model, manifest_digest)]
    subjects += [subject(LAYER_SUBJECT_PREFIX + name, digest) for name, digest in layers]
    predicate = {
        "model": model,
        "manifestDigest": manifest_digest,
        "requestId": request_id,
        "cardDigest": card_digest,
        "openness": dict(openness),
        "license": dict(license_facts),
        "scan": dict(scan_summary),
        "audits": dict(audit_digests or {}),
        "approvals": [a.to_json() for a in approvals],
        "policy": {"digest": policy.digest(), "version": policy.version, "threshold": policy.threshold},
        "log": {"index": log_index, **({"origin": log_origin} if log_origin else {})},
        "issuedAt": issued_at,
    }
    payload = statement(subjects, SEAL_PREDICATE_TYPE, predicate)
    return sign_envelope(IN_TOTO_PAYLOAD_TYPE, payload, [zoo_key])


def revocation_body(model: str, manifest_digest: str, seal: str, reason: str, revoked_at: int) -> dict[str, Any]:
    """The log body of a revocation; :func:`verify_seal` matches it by seal or manifest digest."""
    if not reason.strip():
        raise InvalidRequest("a revocation needs a reason")
    return {
        "model": model,
        "manifest_digest": manifest_digest,
        "seal": seal,
        "reason": reason,
        "revoked_at": revoked_at,
    }


@dataclass(frozen=True)
class Check:
    """One named verification step."""

    name: str
    status: Literal["pass", "fail", "skip"]
    reason: str

    @property
    def ok(self) -> bool:
        """True unless the check failed (skipped checks had nothing to check)."""
        return self.status != "fail"


@dataclass(frozen=True)
class SealReport:
    """All checks of one seal verification, in order; ``statement`` is set when the signature held."""

    checks: tuple[Check, ...]
    statement: Mapping[str, Any] | None

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status == "fail"]

    def check(self, name: str) -> Check:
        """A check by name (KeyError if absent)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)


def verify_seal(
    envelope: Envelope | Mapping[str, Any] | bytes,
    trusted_zoo_keys: Sequence[PublicKey],
    policy: Policy | Sequence[Policy],
    *,
    manifest_digest: str | None = None,
    layer_digests: Iterable[str] | None = None,
    card_digest: str | None = None,
    receipt: LogReceipt | None = None,
    log_keys: Sequence[PublicKey] | None = None,
    revocations: Iterable[Mapping[str, Any]] = (),
) -> SealReport:
    """Verify a seal offline and return every check by name.

    Checks: ``seal signature`` (zoo key, pinned payload type), ``statement`` (in-toto v1, seal
    predicate), ``manifest`` / ``files`` / ``card`` (only when the local digests are given), ``scan`` (no
    blocking finding), ``policy`` (the seal was counted under ``policy``, or one of the policies of a
    verified rotation chain when a sequence is given), ``quorum`` (k distinct valid
    reviewer approvals), ``log inclusion`` (receipt for this very seal under a checkpoint signed by a
    ``log_keys`` key, default the zoo keys) and ``revocation`` (none of ``revocations`` names it).
    """
    checks: list[Check] = []

    def add(name: str, ok: bool, good: str, bad: str) -> None:
        checks.append(Check(name, "pass" if ok else "fail", good if ok else bad))

    try:
        env = envelope if isinstance(envelope, Envelope) else Envelope.from_json(envelope)
        signer = verify_envelope(env, trusted_zoo_keys, IN_TOTO_PAYLOAD_TYPE)[0]
        checks.append(Check("seal signature", "pass", f"signed by {signer.name} ({signer.key_id[:16]}…)"))
    except OpenzooError as exc:
        checks.append(Check("seal signature", "fail", str(exc)))
        return SealReport(tuple(checks), None)
    try:
        stmt = parse_statement(env.payload, SEAL_PREDICATE_TYPE)
        pred = stmt["predicate"]
        subjects = [(str(s["name"]), str(s["digest"]["sha256"])) for s in stmt["subject"]]
        model, manifest = str(pred["model"]), str(pred["manifestDigest"])
    except (VerificationFailed, KeyError, TypeError) as exc:
        checks.append(Check("statement", "fail", f"malformed seal statement: {exc}"))
        return SealReport(tuple(checks), None)
    checks.append(Check("statement", "pass", f"seal for {model}"))
    hex_of = _hex
    subject_ok = (MANIFEST_SUBJECT_PREFIX + model, hex_of(manifest)) in subjects
    if manifest_digest is not None:
        add(
            "manifest",
            subject_ok and hex_of(manifest_digest) == hex_of(manifest),
            "manifest digest matches",
            f"manifest {manifest_digest} is not the sealed {manifest}",
        )
    else:
        add("manifest", subject_ok, "manifest subject present", "manifest subject does not match predicate")
    if layer_digests is not None:
        sealed = {v for k, v in subjects if k.startswith(LAYER_SUBJECT_PREFIX)}
        local = {hex_of(d) for d in layer_digests}
        add(
            "files",
            sealed == local,
            f"{len(local)} file digests match",
            f"file digests differ from the seal: {len(local - sealed)} unsealed, {len(sealed - local)} missing",
        )
    if card_digest is not None:
        add(
            "card",
            hex_of(card_digest) == hex_of(str(pred.get("cardDigest", ""))),
            "card digest matches",
            "model card differs from the sealed card",
        )
    scan = pred.get("scan")
    add(
        "scan",
        isinstance(scan, Mapping) and not scan.get("blocked"),
        "no blocking scan findings",
        "the sealed scan summary has blocking findings",
    )
    policies = [policy] if isinstance(policy, Policy) else list(policy)
    sealed_digest = _section(pred, "policy").get("digest")
    used = next((p for p in policies if p.digest() == sealed_digest), None)
    if used is None:
        checks.append(
            Check("policy", "fail", f"seal was counted under policy {sealed_digest}, which is not a trusted policy")
        )
        checks.append(Check("quorum", "fail", "no trusted policy to count approvals under"))
    else:
        checks.append(Check("policy", "pass", f"policy v{used.version} ({used.digest()[:19]}…)"))
        checks.append(_quorum_check(pred, used, model, manifest))
    checks.append(_log_check(env, pred, receipt, log_keys or trusted_zoo_keys))
    digest = seal_digest(env)
    revoked = [r for r in revocations if r.get("seal") == digest or r.get("manifest_digest") == manifest]
    add(
        "revocation",
        not revoked,
        "no revocation logged",
        f"revoked: {revoked[0].get('reason', 'no reason') if revoked else ''}",
    )
    return SealReport(tuple(checks), stmt)


def _section(pred: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A predicate sub-object, or an empty one when missing or malformed (its checks then fail)."""
    value = pred.get(name)
    return value if isinstance(value, Mapping) else {}


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:").lower()


def _quorum_check(pred: Mapping[str, Any], policy: Policy, model: str, manifest: str) -> Check:
    try:
        approvals = [Approval.from_json(a) for a in pred.get("approvals", [])]
    except InvalidRequest as exc:
        return Check("quorum", "fail", f"malformed approval: {exc}")
    result = count_approvals(
        approvals, policy, model=model, manifest_digest=manifest, request_id=str(pred.get("requestId"))
    )
    reason = result.summary() + ("" if not result.problems else "; " + "; ".join(result.problems))
    return Check("quorum", "pass" if result.met else "fail", reason)


def _log_check(env: Envelope, pred: Mapping[str, Any], receipt: LogReceipt | None, keys: Sequence[PublicKey]) -> Check:
    if receipt is None:
        return Check("log inclusion", "skip", "no log receipt given")
    log = _section(pred, "log")
    if receipt.kind != "seal" or receipt.body != env.to_json():
        return Check("log inclusion", "fail", "the log receipt is for a different entry than this seal")
    if receipt.index != log.get("index"):
        return Check("log inclusion", "fail", f"seal claims log index {log.get('index')}, receipt {receipt.index}")
    try:
        cp = verify_receipt(receipt, keys, log.get("origin"))
    except OpenzooError as exc:
        return Check("log inclusion", "fail", str(exc))
    return Check("log inclusion", "pass", f"entry {receipt.index} in {cp.origin} at size {cp.size}")
