"""Certification's core: the zoo's keys (:class:`ZooKeys`), its transparency log (:class:`ZooLog`) and
whom it trusts under which reviewer policy (:class:`Trust`).

Why a core of its own: every certification step (evidence, requests and seals, verification) signs with
the zoo key, appends to the one log and reads the policy; those steps are collaborators built on these
three (:mod:`openzoo.certify.evidence`, :mod:`openzoo.certify.requests`, :mod:`openzoo.certify.verification`)
and :class:`openzoo.certify.service.Certification` composes them.

* the zoo's keyring under ``OPENZOO_HOME/keys`` (the zoo key ``zoo`` is made on first use; peers trusted
  with ``keys trust`` are zoo keys unless marked as reviewers, recorded in ``keys/trust.json``);
* one :class:`TransparencyLog` in the catalog database, written only inside catalog transactions, with a
  signed tree head after every change;
* what it saw of other zoos' logs (:class:`~openzoo.certify.gossip_store.GossipStore`, migration 110);
* tables ``certify_requests``, ``certify_policies``, ``certify_pulled`` and ``certify_monitor``
  (migration 100; ``certify_monitor``'s one head per log is folded into :mod:`.gossip_store` by the
  monitor, which keeps every head it sees).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from openzoo.certify.checkpoint import Checkpoint, parse_note
from openzoo.certify.gossip import origin_for
from openzoo.certify.gossip_store import GossipStore
from openzoo.certify.keys import Keyring, PublicKey, SigningKey
from openzoo.certify.log import TransparencyLog
from openzoo.certify.note import NoteVerifier, log_signer, witness_signer
from openzoo.certify.policy import (
    Policy,
    create_policy,
    rotate_policy,
    sign_policy,
)
from openzoo.certify.witness import Witness
from openzoo.certify.witnessing import LogWitnesses
from openzoo.errors import Conflict, InvalidRequest, NotFound, VerificationFailed
from openzoo.facts.canonical import canonical_json, parse_json, sha256_digest
from openzoo.store import manifests as mt
from openzoo.store import migrations
from openzoo.store.catalog import Catalog
from openzoo.store.db import Database
from openzoo.store.manifests import Manifest

ZOO_KEY = "zoo"


def _m100(conn: Database) -> None:
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


MIGRATION = migrations.Step(100, "certification requests, policies, pulled models and monitor heads", _m100)


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
    mt.DATASET_CONFIG: "config",
    mt.DATASHEET: "datasheet",
    **{media_type: "data" for media_type in mt.DATA_TYPES.values()},
}


def layer_label(media_type: str) -> str:
    """A person's word for a layer type (``weights``, ``card``, ``seal``…)."""
    return LABELS.get(media_type, media_type)


def sealed_manifest(manifest: Manifest) -> Manifest:
    """The manifest a seal covers: the model's manifest without its SEAL layer."""
    return manifest.replace_layers(mt.SEAL, [])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sealed_digest(manifest: Manifest) -> str:
    return sha256_digest(sealed_manifest(manifest).to_bytes())


class ZooKeys:
    """The zoo's key material under ``OPENZOO_HOME/keys``: its own key, trusted peers and reviewers.

    Reading and opening keys only; trusting, generating and revoking are logged, so they are :class:`Trust`'s.
    """

    def __init__(self, keys_dir: Path, *, passphrase: str = "", zoo_passphrase: str = "") -> None:
        """``passphrase`` opens encrypted reviewer keys and ``zoo_passphrase`` the zoo's own keys (the settings
        ``OPENZOO_KEY_PASSPHRASE`` and ``OPENZOO_ZOO_KEY_PASSPHRASE``; empty: none)."""
        self.keys_dir = keys_dir
        self._passphrase = passphrase.encode() or None
        self.zoo_passphrase = zoo_passphrase.encode() or None
        self._keyring: Keyring | None = None

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            self._keyring = Keyring(self.keys_dir)
        return self._keyring

    def zoo_key(self) -> SigningKey:
        """The zoo's own signing key, made on first use."""
        return self.keyring.ensure(ZOO_KEY, self.zoo_passphrase)

    def zoo_public(self) -> PublicKey:
        if not self.keyring.has_private(ZOO_KEY):
            self.zoo_key()
        return self.keyring.load(ZOO_KEY)

    def trust_file(self) -> Path:
        return self.keys_dir / "trust.json"

    def trust_kinds(self) -> dict[str, str]:
        path = self.trust_file()
        if not path.exists():
            return {}
        data = parse_json(path.read_bytes(), "keys/trust.json")
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

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

    def key_is_encrypted(self, name: str) -> bool:
        path = self.keys_dir / f"{name}.key"
        return path.is_file() and b"ENCRYPTED" in path.read_bytes()[:64]

    def has_passphrase(self) -> bool:
        return self._passphrase is not None

    def use_passphrase(self, passphrase: str) -> None:
        """Open encrypted reviewer keys with ``passphrase`` from now on (the CLI asks for one when unset)."""
        self._passphrase = passphrase.encode() or None

    def reviewer_signing_key(self, name: str) -> SigningKey:
        """A reviewer's private key; an encrypted one is opened with ``OPENZOO_KEY_PASSPHRASE``."""
        return self.keyring.signing_key(name, self._passphrase if self.key_is_encrypted(name) else None)

    def reviewer_key(self, name: str) -> PublicKey:
        return self.keyring.load(name)


class ZooLog:
    """This zoo's transparency log in the catalog, what it saw of other logs, and its witnesses.

    Every append is signed with the zoo key in the same catalog transaction.
    """

    def __init__(self, catalog: Catalog, keys: ZooKeys) -> None:
        self.catalog = catalog
        self.conn = catalog.connection
        self.keys = keys
        self._log: TransparencyLog | None = None
        self._gossip: GossipStore | None = None
        self._witnesses: LogWitnesses | None = None
        self._witness: Witness | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """A catalog transaction (the log's appends and head signatures nest in it as savepoints)."""
        with self.catalog.transaction() as conn:
            yield conn

    @property
    def log(self) -> TransparencyLog:
        if self._log is None:
            origin = origin_for(self.keys.zoo_public())
            log_key = log_signer(self.keys.keys_dir, origin, self.keys.zoo_passphrase)  # C2SP (Ed25519)
            self._log = TransparencyLog(self.conn, origin=origin, log_key=log_key)
        return self._log

    @property
    def witnesses(self) -> LogWitnesses:
        """The witnesses this zoo asks to cosign its log, and their cosignatures."""
        if self._witnesses is None:
            self._witnesses = LogWitnesses(self.catalog, self.log, self.head)
        return self._witnesses

    @property
    def witness(self) -> Witness:
        """This zoo as a witness of other logs (its key: ``keys/note/witness.key``)."""
        if self._witness is None:
            signer = witness_signer(self.keys.keys_dir, self.log.origin, self.keys.zoo_passphrase)
            self._witness = Witness(self.catalog, signer, self.gossip)
        return self._witness

    @property
    def gossip(self) -> GossipStore:
        """What this zoo saw of other zoos' logs: heads, copies of their leaves, fork evidence."""
        if self._gossip is None:
            self._gossip = GossipStore(self.catalog)
        return self._gossip

    def log_event(self, kind: str, body: Any, *, expected_index: int | None = None) -> int:
        """Append one entry and sign the new head, in one catalog transaction."""
        key = self.keys.zoo_key()
        with self.transaction():
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
        with self.transaction():
            return self.log.sign_head(self.keys.zoo_key())


class Trust:
    """Keys and policy: whom this zoo trusts (peer zoos, reviewers) and the reviewer policy, every change
    logged."""

    def __init__(self, keys: ZooKeys, zoo_log: ZooLog) -> None:
        self.keys = keys
        self.zoo_log = zoo_log
        self.conn = zoo_log.conn

    def trust(self, name: str, pem: bytes, kind: str = "zoo") -> PublicKey:
        """Trust a peer zoo's (or a remote reviewer's) public key; logged."""
        if kind not in ("zoo", "reviewer"):
            raise InvalidRequest("a trusted key is a zoo key or a reviewer key")
        if name == ZOO_KEY:
            raise Conflict("the name 'zoo' is this zoo's own key", hint="trust the peer under another name")
        key = self.keys.keyring.trust(name, pem)
        kinds = self.keys.trust_kinds()
        kinds[name] = kind
        tmp = self.keys.trust_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(kinds, indent=1, sort_keys=True))
        os.replace(tmp, self.keys.trust_file())
        self.zoo_log.log_event("key", {"action": "trust", "name": name, "kind": kind, "key_id": key.key_id})
        return key

    def generate_key(self, name: str, passphrase: bytes | None = None) -> SigningKey:
        key = self.keys.keyring.generate(name, passphrase)
        self.zoo_log.log_event("key", {"action": "generate", "name": name, "key_id": key.key_id})
        return key

    def revoke_key(self, name: str) -> str:
        info = self.keys.keyring.revoke(name)
        self.zoo_log.log_event("key", {"action": "revoke", "name": name, "key_id": info.key_id})
        return info.key_id

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

    def set_policy(self, reviewers: Sequence[str], threshold: int, signers: Sequence[str] = (),
                   witnesses: Sequence[str] = (), witness_threshold: int = 0) -> Policy:
        """Create the first policy (trusted on creation) or rotate to a new one signed by k current reviewers.

        ``witnesses`` (cosignature vkeys) with ``witness_threshold`` k: seals need k witnesses' cosignatures.
        """
        keys = [self.keys.reviewer_key(n.strip()) for n in reviewers if n.strip()]
        current = self.policies()
        if not current:
            policy = create_policy(keys, threshold, 1, witnesses, witness_threshold)
            envelope_json: str | None = None
        else:
            new = create_policy(keys, threshold, current[-1].version + 1, witnesses, witness_threshold)
            if not signers:
                raise VerificationFailed(
                    f"a new policy must be signed by {current[-1].threshold} reviewers of policy "
                    f"v{current[-1].version}",
                    hint="add --sign-with alice,bob",
                )
            envelope = sign_policy(new, [self.keys.reviewer_signing_key(s) for s in signers])
            policy = rotate_policy(current[-1], envelope)
            policy = Policy(policy.version, policy.threshold, new.reviewers, new.witnesses, new.witness_threshold)
            envelope_json = envelope.to_bytes().decode()
        body = {"version": policy.version, "digest": policy.digest(), "policy": policy.to_json()}
        if envelope_json:
            body["envelope"] = parse_json(envelope_json)
        key = self.keys.zoo_key()
        with self.zoo_log.transaction():
            index = self.zoo_log.log.append("policy", body)
            self.zoo_log.log.sign_head(key)
            self.conn.execute(
                "INSERT INTO certify_policies(version, policy, envelope, log_index, created_at) VALUES (?,?,?,?,?)",
                (policy.version, canonical_json(policy.to_json()).decode(), envelope_json, index, time.time()),
            )
        return policy

    def known_witnesses(self) -> list[NoteVerifier]:
        """Witness keys this zoo knows: those its log asks and those its latest policy names."""
        keys = {w.verifier for w in self.zoo_log.witnesses.witnesses()}
        with contextlib.suppress(NotFound):
            keys.update(self.policy().witness_keys())
        return sorted(keys, key=lambda k: k.vkey)
