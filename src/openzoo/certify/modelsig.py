"""OpenSSF ``model-signing`` (v1.x) bundles in key mode, written and verified without the package.

Why: people who do not run openzoo can check a model's file digests with the standard tool
(``model_signing verify key DIR --signature model.sig --public_key zoo.pub``), and openzoo can verify a
bundle someone else made, offline, with the same P-256 key the seals use. The ``model-signing`` package
pulls ~40 dependencies (sigstore, tuf, protobuf…) for a format this small, so it is written here from
model-signing 1.1.1's behaviour and tested against bundles that tool produced:

* every regular file under the directory is hashed with SHA-256 (git paths and the signature itself are
  ignored; symlinks are refused, as ``allow_symlinks: false`` says);
* an in-toto Statement v1 with one subject ``{name: <dir name>, digest.sha256: SHA-256 over the raw file
  digests in path order}``, predicate type ``https://model_signing/signature/v1.0`` and predicate
  ``{resources: [{name, algorithm, digest}], serialization: {method: files, hash_type, allow_symlinks,
  ignore_paths}}``;
* a DSSE envelope (``keyid`` empty) in a Sigstore bundle v0.3 whose ``verificationMaterial.publicKey.hint``
  is the hex SHA-256 of the signer's PEM public key, with no transparency-log entries.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo.certify.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    Signature,
    parse_statement,
    sign_envelope,
    statement,
    verify_envelope,
)
from openzoo.certify.keys import PublicKey, SigningKey
from openzoo.errors import InvalidRequest, OpenzooError, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode, parse_json

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "DEFAULT_SIGNATURE_NAME",
    "MODEL_SIGNING_PREDICATE_TYPE",
    "ModelSignature",
    "hash_model_dir",
    "key_hint",
    "sign_model_dir",
    "verify_bundle",
    "verify_model_dir",
]

MODEL_SIGNING_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DEFAULT_SIGNATURE_NAME = "model.sig"
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
_CHUNK = 1 << 20


def key_hint(key: PublicKey) -> str:
    """model-signing's public key identifier: hex SHA-256 of the PEM SubjectPublicKeyInfo."""
    return hashlib.sha256(key.pem()).hexdigest()


def _ignored(rel: str, ignore: Iterable[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in ignore)


def hash_model_dir(model_dir: str | os.PathLike[str], ignore_paths: Iterable[str] = ()) -> dict[str, str]:
    """SHA-256 (hex) of every regular file, keyed by POSIX path relative to ``model_dir``, in path order.

    ``ignore_paths`` (relative files or directories) and the git paths are skipped; a symlink anywhere is
    an InvalidRequest, because following it could hash files outside the model.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise InvalidRequest(f"{root} is not a directory")
    ignore = [*GIT_PATHS, *(str(p).strip("/") for p in ignore_paths)]
    digests: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            if (base / name).is_symlink():
                raise InvalidRequest(f"{(base / name).relative_to(root)} is a symlink; model signing refuses them")
        for name in filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if _ignored(rel, ignore):
                continue
            h = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    h.update(chunk)
            digests[rel] = h.hexdigest()
    return dict(sorted(digests.items()))


def _root_digest(files: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for _, digest in sorted(files.items()):
        h.update(bytes.fromhex(digest))
    return h.hexdigest()


def sign_model_dir(
    model_dir: str | os.PathLike[str],
    key: SigningKey,
    *,
    signature_name: str = DEFAULT_SIGNATURE_NAME,
    ignore_paths: Iterable[str] = (),
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Sign a model directory and return the bundle JSON (write it to ``<dir>/model.sig`` or anywhere).

    ``files`` may pass precomputed digests (openzoo caches blob digests) instead of re-hashing.
    """
    root = Path(model_dir)
    ignore = sorted({signature_name, *(str(p).strip("/") for p in ignore_paths), *GIT_PATHS})
    digests = dict(sorted((files if files is not None else hash_model_dir(root, ignore)).items()))
    if not digests:
        raise InvalidRequest(f"{root} has no files to sign")
    predicate = {
        "resources": [{"name": n, "algorithm": "sha256", "digest": d} for n, d in digests.items()],
        "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False, "ignore_paths": ignore},
    }
    subject = {"name": root.name, "digest": {"sha256": _root_digest(digests)}}
    payload = statement([subject], MODEL_SIGNING_PREDICATE_TYPE, predicate)
    envelope = sign_envelope(IN_TOTO_PAYLOAD_TYPE, payload, [key])
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": b64encode(envelope.payload),
            "payloadType": envelope.payload_type,
            "signatures": [{"sig": b64encode(s.sig), "keyid": ""} for s in envelope.signatures],
        },
    }


@dataclass(frozen=True)
class ModelSignature:
    """What a verified bundle states: the model name, file digests and the paths ignored at signing."""

    model_name: str
    files: dict[str, str]
    ignore_paths: tuple[str, ...]


def verify_bundle(bundle: Mapping[str, Any] | bytes | str, public_key: PublicKey) -> ModelSignature:
    """Check a bundle's signature with ``public_key`` and that its root digest covers its resources.

    Raises VerificationFailed naming the problem; the files themselves are checked by
    :func:`verify_model_dir` (or by comparing :attr:`ModelSignature.files` with cached digests).
    """
    try:
        obj = parse_json(bundle, "model-signing bundle") if isinstance(bundle, bytes | str) else bundle
        if obj.get("mediaType") != BUNDLE_MEDIA_TYPE:
            raise VerificationFailed(f"not a Sigstore bundle v0.3 ({obj.get('mediaType')!r})")
        hint = obj.get("verificationMaterial", {}).get("publicKey", {}).get("hint")
        if hint and hint != key_hint(public_key):
            raise VerificationFailed("bundle was signed with a different key (public key hint mismatch)")
        raw = obj["dsseEnvelope"]
        envelope = Envelope(
            str(raw["payloadType"]),
            b64decode(str(raw["payload"]), "bundle payload"),
            tuple(_sig(s) for s in raw["signatures"][:1]),
        )
    except (KeyError, TypeError, AttributeError, InvalidRequest) as exc:
        raise VerificationFailed(f"malformed model-signing bundle: {exc}") from exc
    verify_envelope(envelope, [public_key], IN_TOTO_PAYLOAD_TYPE)
    try:
        stmt = parse_statement(envelope.payload, MODEL_SIGNING_PREDICATE_TYPE)
        (subject,) = stmt["subject"]
        pred = stmt["predicate"]
        files = {str(r["name"]): str(r["digest"]) for r in pred["resources"] if r["algorithm"] == "sha256"}
        if len(files) != len(pred["resources"]):
            raise VerificationFailed("only sha256 resources are supported")
        ignore = tuple(str(p) for p in pred.get("serialization", {}).get("ignore_paths", ()))
        if _root_digest(files) != subject["digest"]["sha256"]:
            raise VerificationFailed("manifest is inconsistent: resources do not hash to the subject digest")
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"malformed model-signing statement: {exc}") from exc
    return ModelSignature(str(subject["name"]), dict(sorted(files.items())), ignore)


def _sig(raw: Any) -> Signature:
    return Signature(str(raw.get("keyid") or ""), b64decode(str(raw["sig"]), "bundle signature"))


def verify_model_dir(
    model_dir: str | os.PathLike[str],
    bundle: Mapping[str, Any] | bytes | str,
    public_key: PublicKey,
    *,
    ignore_unsigned: bool = False,
) -> ModelSignature:
    """Verify the bundle and re-hash the directory; every file must match, none may be missing or extra
    (unless ``ignore_unsigned``). Raises VerificationFailed listing what differs."""
    signed = verify_bundle(bundle, public_key)
    try:
        actual = hash_model_dir(model_dir, signed.ignore_paths)
    except OpenzooError as exc:
        raise VerificationFailed(str(exc)) from exc
    problems = [f"{n}: digest differs" for n in sorted(signed.files) if n in actual and actual[n] != signed.files[n]]
    problems += [f"{n}: missing" for n in sorted(signed.files) if n not in actual]
    if not ignore_unsigned:
        problems += [f"{n}: extra file, not signed" for n in sorted(actual) if n not in signed.files]
    if problems:
        raise VerificationFailed("model files do not match the signature: " + "; ".join(problems))
    return signed
