"""Certification of one store, composed: keys, log, trust (keys and policy), evidence, seals, verifier.

:class:`~openzoo.services.Services` builds one :class:`Certification` per process (it keeps the log's
frontier) and holds it; nothing here is module-level state. Each collaborator has a narrow face and is
built with the ones it needs, in this order:

* :class:`~openzoo.certify.core.ZooKeys` — the zoo's key material (its key, trusted peers, reviewers);
* :class:`~openzoo.certify.core.ZooLog` — the transparency log, gossip of other logs, witnesses (signs
  with the zoo key);
* :class:`~openzoo.certify.core.Trust` — keys and policy: trusting, generating and revoking keys, the
  reviewer policy (every change logged);
* :class:`~openzoo.certify.evidence.Evidence` — cards, license facts, openness, scans (reads the store);
* :class:`~openzoo.certify.requests.Seals` — requests, approvals, seals, revocations;
* :class:`~openzoo.certify.verification.Verifier` — offline verification and the pulls it accepted.

The methods below forward to them: the one face the CLI, the HTTP routes, the web pages and the registry
use. New code may take the collaborator it needs instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openzoo.certify.core import Trust, ZooKeys, ZooLog
from openzoo.certify.dsse import Envelope
from openzoo.certify.evidence import Evidence
from openzoo.certify.gossip_store import GossipStore
from openzoo.certify.keys import Keyring, PublicKey, SigningKey
from openzoo.certify.log import LogReceipt, TransparencyLog
from openzoo.certify.note import NoteVerifier
from openzoo.certify.openness import OpennessReport
from openzoo.certify.policy import Approval, Policy, QuorumResult
from openzoo.certify.requests import CertifyRequest, Seals
from openzoo.certify.seal import Check
from openzoo.certify.verification import Verifier, VerifyResult
from openzoo.certify.witness import Witness
from openzoo.certify.witnessing import LogWitnesses
from openzoo.facts.card import ModelCard
from openzoo.facts.licenses import LicenseFacts
from openzoo.formats.scan import ScanReport
from openzoo.names import ModelName
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

__all__ = ["Certification"]


class Certification:
    """Certification of the models and datasets in one store."""

    def __init__(self, store: Store, *, passphrase: str = "", zoo_passphrase: str = "") -> None:
        """``passphrase`` opens encrypted reviewer keys, ``zoo_passphrase`` the zoo's own keys (the settings
        ``OPENZOO_KEY_PASSPHRASE`` and ``OPENZOO_ZOO_KEY_PASSPHRASE``)."""
        self.store = store
        self.catalog = store.catalog
        self.conn = store.catalog.connection
        self.keys_dir = Path(store.home) / "keys"
        self.keys = ZooKeys(self.keys_dir, passphrase=passphrase, zoo_passphrase=zoo_passphrase)
        self.zoo_log = ZooLog(store.catalog, self.keys)
        self.keys_policy = Trust(self.keys, self.zoo_log)
        self.evidence = Evidence(store)
        self.seals = Seals(store, self.keys, self.keys_policy, self.zoo_log, self.evidence)
        self.verifier = Verifier(store, self.keys, self.keys_policy, self.zoo_log, self.seals)

    # -- keys (ZooKeys) -------------------------------------------------------------------------

    @property

    def keyring(self) -> Keyring:
        return self.keys.keyring

    def zoo_key(self) -> SigningKey:
        return self.keys.zoo_key()

    def zoo_public(self) -> PublicKey:
        return self.keys.zoo_public()

    def trust_kinds(self) -> dict[str, str]:
        return self.keys.trust_kinds()

    def zoo_keys(self) -> list[PublicKey]:
        return self.keys.zoo_keys()

    def key_name(self, key: PublicKey) -> str:
        return self.keys.key_name(key)

    def key_is_encrypted(self, name: str) -> bool:
        return self.keys.key_is_encrypted(name)

    def has_passphrase(self) -> bool:
        return self.keys.has_passphrase()

    def use_passphrase(self, passphrase: str) -> None:
        return self.keys.use_passphrase(passphrase)

    # -- zoo_log (ZooLog) -----------------------------------------------------------------------

    @property

    def log(self) -> TransparencyLog:
        return self.zoo_log.log

    @property

    def witnesses(self) -> LogWitnesses:
        return self.zoo_log.witnesses

    @property

    def witness(self) -> Witness:
        return self.zoo_log.witness

    @property

    def gossip(self) -> GossipStore:
        return self.zoo_log.gossip

    def log_event(self, kind: str, body: Any, *, expected_index: int | None = None) -> int:
        return self.zoo_log.log_event(kind, body, expected_index=expected_index)

    def head(self) -> str:
        return self.zoo_log.head()

    # -- trust (Trust) --------------------------------------------------------------------------

    def trust(self, name: str, pem: bytes, kind: str = "zoo") -> PublicKey:
        return self.keys_policy.trust(name, pem, kind)

    def generate_key(self, name: str, passphrase: bytes | None = None) -> SigningKey:
        return self.keys_policy.generate_key(name, passphrase)

    def revoke_key(self, name: str) -> str:
        return self.keys_policy.revoke_key(name)

    def policies(self) -> list[Policy]:
        return self.keys_policy.policies()

    def policy(self) -> Policy:
        return self.keys_policy.policy()

    def set_policy(self, reviewers: Sequence[str], threshold: int, signers: Sequence[str] = (),
                   witnesses: Sequence[str] = (), witness_threshold: int = 0) -> Policy:
        return self.keys_policy.set_policy(reviewers, threshold, signers, witnesses, witness_threshold)

    def known_witnesses(self) -> list[NoteVerifier]:
        return self.keys_policy.known_witnesses()

    # -- evidence (Evidence) --------------------------------------------------------------------

    def card(self, name: str) -> ModelCard | None:
        return self.evidence.card(name)

    def draft_card(self, name: str) -> ModelCard:
        return self.evidence.draft_card(name)

    def card_or_draft(self, name: str) -> tuple[ModelCard, bool]:
        return self.evidence.card_or_draft(name)

    def ensure_card(self, name: str) -> ModelCard:
        return self.evidence.ensure_card(name)

    def set_card(self, name: str, card: ModelCard) -> str:
        return self.evidence.set_card(name, card)

    def license_facts(self, name: str) -> LicenseFacts:
        return self.evidence.license_facts(name)

    def card_problems(self, name: str, card: ModelCard) -> list[str]:
        return self.evidence.card_problems(name, card)

    def openness(self, name: str) -> OpennessReport:
        return self.evidence.openness(name)

    def scan(self, name: str) -> ScanReport:
        return self.evidence.scan(name)

    # -- seals (Seals) --------------------------------------------------------------------------

    def request(self, name: str) -> CertifyRequest:
        return self.seals.request(name)

    def requests(self, name: str | None = None, status: str | None = None) -> list[CertifyRequest]:
        return self.seals.requests(name, status)

    def approvals(self, request_id: str) -> list[Approval]:
        return self.seals.approvals(request_id)

    def approve(self, name: str, key_name: str) -> tuple[QuorumResult, Envelope | None]:
        return self.seals.approve(name, key_name)

    def seal_bundle(self, name: str) -> dict[str, Any]:
        return self.seals.seal_bundle(name)

    def revoke(self, name: str, reason: str) -> int:
        return self.seals.revoke(name, reason)

    def revocations(self, upto: int | None = None, after: int = -1) -> list[dict[str, Any]]:
        return self.seals.revocations(upto, after)

    # -- verifier (Verifier) --------------------------------------------------------------------

    def pulled(self, name: ModelName) -> dict[str, Any] | None:
        return self.verifier.pulled(name)

    def record_pull(self, name: ModelName, *, source: str, zoo: str | None, certified: bool, manifest_digest: str,
                    receipt: LogReceipt | None, revocations: Sequence[Mapping[str, Any]], head: str | None) -> None:
        return self.verifier.record_pull(name, source=source, zoo=zoo, certified=certified,
                                         manifest_digest=manifest_digest, receipt=receipt, revocations=revocations,
                                         head=head)

    def verify(self, name: str) -> VerifyResult:
        return self.verifier.verify(name)

    def check_seal(self, manifest: Manifest, bundle: Mapping[str, Any], receipt: LogReceipt | None,
                   revocations: Iterable[Mapping[str, Any]],
                   zoo_keys: Sequence[PublicKey] | None = None) -> tuple[list[Check], str | None]:
        return self.verifier.check_seal(manifest, bundle, receipt, revocations, zoo_keys)

    def export_signature(self, name: str, directory: Path) -> Path:
        return self.verifier.export_signature(name, directory)

    def verify_directory(self, directory: Path, signature: Path | None = None) -> VerifyResult:
        return self.verifier.verify_directory(directory, signature)
