"""Certification policy (who may approve, and how many must), its rotation, approvals and quorum.

Why a threshold of reviewers: no single key (not even the zoo's) can certify a model alone. Why
TUF-style rotation: the policy is the root of trust for approvals, so a new policy only takes effect when
k reviewers of the *current* policy sign it, with a version exactly one higher (no rollback, no skipping);
the first policy is trusted on creation (pinned by its digest).

Policy YAML::

    version: 1
    threshold: 2
    reviewers:
      - name: alice
        public_key: |
          -----BEGIN PUBLIC KEY-----
          ...
      - name: bob
        key_id: 3f9a...      # resolved through a keyring when only the id is given

An approval is the canonical JSON ``{model, manifest_digest, request_id, reviewer_key_id}``, signed as a
DSSE signature (PAE with payload type ``application/vnd.openzoo.approval+json``) so it can never be
mistaken for any other signed object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from openzoo.certify.dsse import Envelope, pae, sign_envelope, verify_envelope
from openzoo.certify.keys import PublicKey, SigningKey, load_public_pem, validate_key_name
from openzoo.certify.note import COSIGNATURE_V1, NoteVerifier, parse_vkey
from openzoo.errors import Conflict, InvalidRequest, NotFound, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode, canonical_json, parse_json, sha256_digest

__all__ = [
    "APPROVAL_PAYLOAD_TYPE",
    "POLICY_PAYLOAD_TYPE",
    "Approval",
    "ApprovalTally",
    "Policy",
    "QuorumResult",
    "Reviewer",
    "count_approvals",
    "create_policy",
    "rotate_policy",
    "sign_approval",
    "sign_policy",
    "verify_approval",
    "verify_policy_chain",
]

POLICY_PAYLOAD_TYPE = "application/vnd.openzoo.policy+json"
APPROVAL_PAYLOAD_TYPE = "application/vnd.openzoo.approval+json"
KeyResolver = Callable[[str], PublicKey]


@dataclass(frozen=True)
class Reviewer:
    """A reviewer: a name and a key id; ``public_key`` is known when the policy carries the PEM or a
    keyring resolved the id (only then can its approvals be verified)."""

    name: str
    key_id: str
    public_key: PublicKey | None = None


@dataclass(frozen=True)
class Policy:
    """A versioned reviewer set with threshold k; :meth:`digest` identifies it in seals and the log.

    ``witnesses`` (C2SP cosignature/v1 verifier keys) and ``witness_threshold`` k: a seal's log receipt must
    carry cosignatures of k of them (:mod:`.cosignature`), so a reader offline knows that k witnesses saw
    the same append-only log. A policy without witnesses has the JSON (and digest) it always had.
    """

    version: int
    threshold: int
    reviewers: tuple[Reviewer, ...]
    witnesses: tuple[str, ...] = ()
    witness_threshold: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise InvalidRequest("policy version must be an integer >= 1")
        if not self.reviewers:
            raise InvalidRequest("a policy needs at least one reviewer")
        if (
            not isinstance(self.threshold, int)
            or isinstance(self.threshold, bool)
            or not 1 <= self.threshold <= len(self.reviewers)
        ):
            raise InvalidRequest(f"threshold must be between 1 and {len(self.reviewers)}", hint="k of n reviewers")
        names = [r.name for r in self.reviewers]
        ids = [r.key_id for r in self.reviewers]
        if len(set(names)) != len(names) or len(set(ids)) != len(ids):
            raise InvalidRequest("policy reviewers must have distinct names and keys")
        witnesses = self.witness_keys()
        if len({w.name for w in witnesses}) != len(witnesses):
            raise InvalidRequest("policy witnesses must have distinct names")
        k = self.witness_threshold
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(witnesses) or (witnesses and not k):
            raise InvalidRequest(f"witness threshold must be between 1 and {len(witnesses)}" if witnesses else
                                 "a witness threshold needs witnesses", hint="k of n witnesses' vkeys")

    def witness_keys(self) -> list[NoteVerifier]:
        """The witnesses' cosignature keys (parsed; InvalidRequest if one is not a cosignature/v1 vkey)."""
        if not isinstance(self.witnesses, tuple) or not all(isinstance(w, str) for w in self.witnesses):
            raise InvalidRequest("policy witnesses are a list of verifier keys")
        return [parse_vkey(w, COSIGNATURE_V1) for w in self.witnesses]

    def to_json(self, with_keys: bool = True) -> dict[str, Any]:
        """Plain dict form; ``with_keys`` adds the PEMs (the digest never includes them)."""
        reviewers = []
        for r in self.reviewers:
            item: dict[str, Any] = {"name": r.name, "key_id": r.key_id}
            if with_keys and r.public_key is not None:
                item["public_key"] = r.public_key.pem().decode("ascii")
            reviewers.append(item)
        data: dict[str, Any] = {"version": self.version, "threshold": self.threshold, "reviewers": reviewers}
        if self.witnesses:
            data["witnesses"] = list(self.witnesses)
            data["witness_threshold"] = self.witness_threshold
        return data

    def digest(self) -> str:
        """``sha256:`` of the canonical JSON of version, threshold, names and key ids.

        Key ids already pin the keys, so a policy digests the same with or without embedded PEMs.
        """
        return sha256_digest(canonical_json(self.to_json(with_keys=False)))

    def to_yaml(self) -> str:
        """The YAML a person edits (with embedded PEMs, so the file verifies on its own)."""
        return yaml.safe_dump(self.to_json(), sort_keys=False)

    @classmethod
    def from_json(cls, data: Any, resolve: KeyResolver | None = None) -> Policy:
        """Build from the dict form; key-id-only reviewers are resolved with ``resolve`` if given."""
        if not isinstance(data, Mapping) or not isinstance(data.get("reviewers"), list):
            raise InvalidRequest("policy needs version, threshold and a list of reviewers")
        reviewers = tuple(_reviewer(item, resolve) for item in data["reviewers"])
        witnesses = data.get("witnesses", [])
        if not isinstance(witnesses, list):
            raise InvalidRequest("policy witnesses are a list of verifier keys")
        return cls(data.get("version"), data.get("threshold"), reviewers,  # type: ignore[arg-type]
                   tuple(witnesses), data.get("witness_threshold", 0))

    @classmethod
    def from_yaml(cls, text: str, resolve: KeyResolver | None = None) -> Policy:
        """Parse policy YAML; InvalidRequest on bad YAML or a bad policy."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidRequest(f"policy is not valid YAML: {exc}") from exc
        return cls.from_json(data, resolve)

    def reviewer(self, key_id: str) -> Reviewer | None:
        """The reviewer holding ``key_id``, if any."""
        return next((r for r in self.reviewers if r.key_id == key_id), None)

    def public_keys(self) -> list[PublicKey]:
        """Reviewer keys known to this policy."""
        return [r.public_key for r in self.reviewers if r.public_key is not None]


def _reviewer(item: Any, resolve: KeyResolver | None) -> Reviewer:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise InvalidRequest("each reviewer needs a name")
    name = validate_key_name(item["name"])
    pem, key_id = item.get("public_key"), item.get("key_id")
    key: PublicKey | None = None
    if isinstance(pem, str):
        key = load_public_pem(pem, name)
        if key_id is not None and key_id != key.key_id:
            raise InvalidRequest(f"reviewer {name}: key_id does not match the public key")
        key_id = key.key_id
    elif isinstance(key_id, str) and resolve is not None:
        try:
            key = resolve(key_id)
        except NotFound:
            key = None
        if key is not None and key.key_id != key_id:
            raise InvalidRequest(f"reviewer {name}: resolved key has a different key id")
    if not isinstance(key_id, str) or len(key_id) != 64:
        raise InvalidRequest(f"reviewer {name} needs a public_key PEM or a 64-hex key_id")
    return Reviewer(name, key_id.lower(), key)


def create_policy(reviewers: Sequence[PublicKey], threshold: int, version: int = 1,
                  witnesses: Sequence[str] = (), witness_threshold: int = 0) -> Policy:
    """A policy from reviewer public keys (their names become the reviewer names) and witness vkeys."""
    return Policy(version, threshold, tuple(Reviewer(k.name, k.key_id, k) for k in reviewers),
                  tuple(parse_vkey(w, COSIGNATURE_V1).vkey for w in witnesses), witness_threshold)


def sign_policy(new: Policy, keys: Iterable[SigningKey]) -> Envelope:
    """A DSSE envelope over the new policy (canonical JSON with PEMs), signed by current reviewers."""
    return sign_envelope(POLICY_PAYLOAD_TYPE, canonical_json(new.to_json()), keys)


def rotate_policy(current: Policy, envelope: Envelope) -> Policy:
    """Accept a new policy only if ``current.threshold`` distinct current reviewers signed it and its
    version is ``current.version + 1``; returns the new policy or raises VerificationFailed."""
    signers = verify_envelope(envelope, current.public_keys(), POLICY_PAYLOAD_TYPE)
    if len(signers) < current.threshold:
        raise VerificationFailed(
            f"new policy signed by {len(signers)} of the {current.threshold} reviewers the current policy "
            f"(v{current.version}) requires"
        )
    try:
        new = Policy.from_json(parse_json(envelope.payload, "policy"))
    except InvalidRequest as exc:
        raise VerificationFailed(f"signed policy is invalid: {exc}") from exc
    if new.version != current.version + 1:
        raise VerificationFailed(f"new policy version {new.version} does not follow {current.version}")
    return new


def verify_policy_chain(first: Policy, updates: Sequence[Envelope], pinned_digest: str | None = None) -> Policy:
    """Walk rotations from the trusted first policy and return the current one."""
    if pinned_digest is not None and first.digest() != pinned_digest:
        raise VerificationFailed("the first policy does not match the pinned digest")
    policy = first
    for envelope in updates:
        policy = rotate_policy(policy, envelope)
    return policy


@dataclass(frozen=True)
class Approval:
    """A reviewer's signed approval of one certification request."""

    model: str
    manifest_digest: str
    request_id: str
    reviewer_key_id: str
    signature: bytes

    def statement(self) -> bytes:
        """The canonical JSON the reviewer signs."""
        return approval_statement(self.model, self.manifest_digest, self.request_id, self.reviewer_key_id)

    def to_json(self) -> dict[str, Any]:
        """Dict form for seals and the log."""
        return {
            "model": self.model,
            "manifest_digest": self.manifest_digest,
            "request_id": self.request_id,
            "reviewer_key_id": self.reviewer_key_id,
            "signature": b64encode(self.signature),
        }

    @classmethod
    def from_json(cls, data: Any) -> Approval:
        """Parse :meth:`to_json` output; InvalidRequest on a wrong shape."""
        fields = ("model", "manifest_digest", "request_id", "reviewer_key_id", "signature")
        if not isinstance(data, Mapping) or not all(isinstance(data.get(f), str) for f in fields):
            raise InvalidRequest("approval needs model, manifest_digest, request_id, reviewer_key_id, signature")
        return cls(
            data["model"],
            data["manifest_digest"],
            data["request_id"],
            data["reviewer_key_id"],
            b64decode(data["signature"], "approval signature"),
        )


def approval_statement(model: str, manifest_digest: str, request_id: str, reviewer_key_id: str) -> bytes:
    """Canonical JSON ``{model, manifest_digest, request_id, reviewer_key_id}``."""
    return canonical_json(
        {
            "model": model,
            "manifest_digest": manifest_digest,
            "request_id": request_id,
            "reviewer_key_id": reviewer_key_id,
        }
    )


def sign_approval(key: SigningKey, *, model: str, manifest_digest: str, request_id: str) -> Approval:
    """Approve a request with a reviewer key."""
    body = approval_statement(model, manifest_digest, request_id, key.key_id)
    return Approval(model, manifest_digest, request_id, key.key_id, key.sign(pae(APPROVAL_PAYLOAD_TYPE, body)))


def verify_approval(
    approval: Approval, policy: Policy, *, model: str, manifest_digest: str, request_id: str
) -> Reviewer:
    """Return the reviewer who validly signed ``approval`` for exactly this request.

    Refuses (VerificationFailed) a key outside the policy, a signature that does not verify, or an
    approval of a different model, manifest or request.
    """
    reviewer = policy.reviewer(approval.reviewer_key_id)
    if reviewer is None:
        raise VerificationFailed(
            f"key {approval.reviewer_key_id[:16]}… is not a reviewer in certification policy v{policy.version}",
            hint="only reviewers listed in the current policy can approve",
        )
    if (approval.model, approval.manifest_digest, approval.request_id) != (
        model,
        manifest_digest,
        request_id,
    ):
        raise VerificationFailed(f"approval by {reviewer.name} is for a different model, manifest or request")
    if reviewer.public_key is None:
        raise VerificationFailed(f"no public key for reviewer {reviewer.name} to check the approval")
    if not reviewer.public_key.verify(approval.signature, pae(APPROVAL_PAYLOAD_TYPE, approval.statement())):
        raise VerificationFailed(f"approval signature by {reviewer.name} does not verify")
    return reviewer


@dataclass(frozen=True)
class QuorumResult:
    """Distinct valid reviewers, problems with the other approvals, and whether k was reached."""

    reviewers: tuple[str, ...]
    problems: tuple[str, ...]
    threshold: int

    @property
    def met(self) -> bool:
        """Whether at least ``threshold`` distinct reviewers approved validly."""
        return len(self.reviewers) >= self.threshold

    def summary(self) -> str:
        """E.g. ``1 of 2 approvals (alice)``."""
        return f"{len(self.reviewers)} of {self.threshold} approvals ({', '.join(self.reviewers) or 'none'})"


def count_approvals(
    approvals: Iterable[Approval], policy: Policy, *, model: str, manifest_digest: str, request_id: str
) -> QuorumResult:
    """Count distinct valid reviewers among ``approvals`` (duplicates count once; bad ones are listed)."""
    names: list[str] = []
    problems: list[str] = []
    for approval in approvals:
        try:
            reviewer = verify_approval(
                approval, policy, model=model, manifest_digest=manifest_digest, request_id=request_id
            )
        except VerificationFailed as exc:
            problems.append(str(exc))
            continue
        if reviewer.name not in names:
            names.append(reviewer.name)
    return QuorumResult(tuple(names), tuple(problems), policy.threshold)


@dataclass
class ApprovalTally:
    """Approvals collected for one request; :meth:`add` enforces one approval per reviewer."""

    policy: Policy
    model: str
    manifest_digest: str
    request_id: str
    approvals: list[Approval] = field(default_factory=list)

    def add(self, approval: Approval) -> Reviewer:
        """Verify and record an approval; Conflict("already approved by alice") on a second one."""
        reviewer = verify_approval(
            approval,
            self.policy,
            model=self.model,
            manifest_digest=self.manifest_digest,
            request_id=self.request_id,
        )
        if any(a.reviewer_key_id == reviewer.key_id for a in self.approvals):
            raise Conflict(f"already approved by {reviewer.name}", hint="another reviewer must approve")
        self.approvals.append(approval)
        return reviewer

    def result(self) -> QuorumResult:
        """The current quorum state."""
        return count_approvals(
            self.approvals,
            self.policy,
            model=self.model,
            manifest_digest=self.manifest_digest,
            request_id=self.request_id,
        )
