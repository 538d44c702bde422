"""``openzoo pull oci://HOST:PORT/REPO:TAG``: a model from an OCI distribution registry, verified offline.

Order, and why: the manifest first (its sha256 must match the digest asked for and the one the registry
names, then it is validated and mapped back to openzoo's manifest); the blobs next, each into a
resumable partial file, cut off past its declared size and re-hashed; then the referrers (referrers API,
else the ``sha256-<hex>`` tag) for the card, seal and proof artifacts; then verification against the
pinned zoo keys — seal signature, files, card, policy, quorum, logged approvals and inclusion under a
signed log head, revocations (:func:`openzoo.registry.trust.verify_sealed`). Only then are the seal
bundle, the manifest and the tag written. A refusal leaves no new model and no new blob behind. A transfer
that merely broke off (:class:`~openzoo.registry.transfer.TransferFailed`) keeps its partial file and the
blobs already complete, so the next run resumes (start-up clean-up sweeps them after an hour if it never
comes). ``--insecure`` keeps an unverifiable model, recorded as uncertified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openzoo import names
from openzoo.certify.dsse import Envelope
from openzoo.certify.seal import seal_digest
from openzoo.certify.service import Certification, certification
from openzoo.errors import (
    DigestMismatch,
    InvalidRequest,
    NotFound,
    NotSupported,
    OpenzooError,
    VerificationFailed,
)
from openzoo.events import Progress
from openzoo.facts.canonical import parse_json, sha256_digest
from openzoo.registry.landing import check_content, fetch_blobs, land
from openzoo.registry.oci.artifacts import (
    CARD_TYPE,
    DSSE_MEDIA_TYPE,
    PROOF_TYPE,
    SEAL_ANNOTATION,
    SEAL_INDEX_ANNOTATION,
    SEAL_TYPE,
    Descriptor,
    OciManifest,
    from_oci,
    parse_index,
    parse_manifest,
)
from openzoo.registry.oci.client import OciClient, OciSettings
from openzoo.registry.oci.reference import parse_reference
from openzoo.registry.transfer import Throttle, TransferFailed, download_blob
from openzoo.registry.trust import Verdict, proof_evidence, verify_sealed
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store

__all__ = ["pull_oci"]

MAX_CANDIDATES = 8  # seal artifacts tried per model; a registry cannot make a pull try forever
MAX_ARTIFACT_BYTES = 4 << 20


@dataclass
class _Sealed:
    """The model as it will be stored with one seal candidate, and what verifying it concluded."""

    manifest: Manifest
    bundle_bytes: bytes | None
    verdict: Verdict


def pull_oci(store: Store, settings: OciSettings, reference: str, *, insecure: bool = False,
             name: str | None = None) -> Iterator[Progress]:
    """Pull ``reference`` and tag it as ``name`` (default: from the reference); see the module docstring."""
    ref = parse_reference(reference)
    target = names.parse(name) if name else ref.local_name()
    cert = certification(store)
    client = OciClient(ref, settings)
    throttle = Throttle(settings.rate_limit)
    fetched: list[str] = []
    try:
        yield Progress("pulling manifest")
        data, content_type, named = client.get_manifest(ref.reference)
        digest = sha256_digest(data)
        if ref.digest and digest != ref.digest:
            raise DigestMismatch(f"the manifest {ref.display} sent hashes to {digest}: refused, nothing stored",
                                 hint="the registry's copy is damaged or was tampered with; do not use it")
        if named and named != digest:
            raise DigestMismatch(f"the manifest of {ref.display} hashes to {digest}, not to the {named} the registry "
                                 "names: refused, nothing stored",
                                 hint="the registry's copy is damaged or was tampered with; do not use it")
        oci = parse_manifest(data, content_type, ref.display)
        manifest = _model_manifest(oci, ref.display)

        def download(blob: str, size: int) -> Iterator[Progress]:
            yield from download_blob(store, client.http, client.path("blobs", blob), blob, size, source=client.base,
                                     raise_for=lambda resp: client.raise_for(resp, f"blob {blob[:19]}…"),
                                     throttle=throttle)

        blobs = [(manifest.config.digest, manifest.config.size)] + [(x.digest, x.size) for x in manifest.layers]
        yield from fetch_blobs(store, cert, blobs, download, fetched)
        yield Progress("verifying sha256 digest")
        yield from check_content(store, manifest, ref.display)
        yield Progress("fetching referrers")
        referrers = _referrers(client, digest)
        yield Progress(f"verifying the seal of {ref.display}")
        sealed = _verify(cert, client, manifest, digest, referrers)
        verdict = sealed.verdict
        if not verdict.certified:
            if not insecure:
                raise VerificationFailed(f"refused {ref.display}: {verdict.reason}",
                                         hint="pull with --insecure to keep it, marked uncertified")
            yield Progress(f"WARNING: {verdict.reason}; keeping it uncertified (--insecure)")
        else:
            yield Progress(f"verified against {verdict.zoo}: {verdict.reason}")
        if sealed.bundle_bytes is not None:
            info = store.blobs.put([sealed.bundle_bytes], expected=_seal_layer(sealed.manifest).digest)
            fetched.append(info.digest)
        yield from land(store, cert, target, sealed.manifest, source=f"oci://{ref.host}/{ref.repository}",
                        verdict=verdict)
        yield Progress("success")
    except TransferFailed:
        raise  # what arrived stays, for the next run to resume
    except BaseException:
        store.remove_unreferenced(fetched)
        raise
    finally:
        client.close()


def _model_manifest(oci: OciManifest, where: str) -> Manifest:
    """The openzoo manifest of a model manifest, refusing what is not one."""
    if oci.subject is not None:
        raise NotSupported(f"{where} is an artifact attached to {oci.subject.digest[:19]}…, not a model",
                           hint="pull the manifest it refers to")
    manifest = from_oci(oci)
    if manifest.first(mt.SEAL) is not None:
        raise InvalidRequest(f"{where} carries a seal layer; openzoo seals travel as referrer artifacts: refused",
                             hint="push the model with 'openzoo push NAME oci://...'")
    return manifest


def _referrers(client: OciClient, digest: str) -> list[Descriptor]:
    """The referrers of ``digest``: the registry's API, or the tag-schema fallback index."""
    found = client.referrers(digest)
    if found is not None:
        return found
    tag = "sha256-" + digest[7:]
    try:
        data, _, _ = client.get_manifest(tag)
    except NotFound:
        return []
    return parse_index(data, f"{client.base} referrers tag {tag}")


def _artifact(client: OciClient, desc: Descriptor, subject: str) -> OciManifest | None:
    """An artifact manifest named by a referrer descriptor, or None when it does not refer to ``subject``."""
    data, content_type, _ = client.get_manifest(desc.digest)
    if sha256_digest(data) != desc.digest:
        raise DigestMismatch(f"artifact {desc.digest[:19]}… from {client.base} does not match its digest: refused",
                             hint="the registry's copy is damaged or was tampered with; do not use it")
    art = parse_manifest(data, content_type, f"{client.base} artifact {desc.digest[:19]}…")
    return art if art.subject is not None and art.subject.digest == subject else None


def _verify(cert: Certification, client: OciClient, manifest: Manifest, digest: str,
            referrers: list[Descriptor]) -> _Sealed:
    """Try the seal artifacts in order; the first that verifies wins, else the first one's failure."""
    card = manifest.first(mt.CARD)
    for desc in [d for d in referrers if d.artifact_type == CARD_TYPE][:MAX_CANDIDATES]:
        art = _artifact(client, desc, digest)
        if art is not None and card is not None and [x.digest for x in art.layers] != [card.digest]:
            return _Sealed(manifest, None, Verdict(False, None, "the card artifact differs from the model's card"))
    seals = [d for d in referrers if d.artifact_type == SEAL_TYPE][:MAX_CANDIDATES]
    proofs = [d for d in referrers if d.artifact_type == PROOF_TYPE]
    if not seals:
        return _Sealed(manifest, None, Verdict(False, None, "the model has no seal artifact"))
    first: _Sealed | None = None
    for desc in seals:
        try:
            candidate = _try_seal(cert, client, manifest, digest, desc, proofs)
        except (OpenzooError, KeyError, TypeError, ValueError) as exc:
            candidate = _Sealed(manifest, None, Verdict(False, None, f"the seal cannot be verified: {exc}"))
        if candidate.verdict.certified:
            return candidate
        first = first or candidate
    assert first is not None
    return first


def _try_seal(cert: Certification, client: OciClient, manifest: Manifest, digest: str, desc: Descriptor,
              proofs: list[Descriptor]) -> _Sealed:
    art = _artifact(client, desc, digest)
    if art is None:
        return _Sealed(manifest, None, Verdict(False, None, "the seal artifact refers to another manifest"))
    envelopes = [x for x in art.layers if x.media_type == DSSE_MEDIA_TYPE]
    bundles = [x for x in art.layers if x.media_type == mt.SEAL]
    if len(envelopes) != 1 or len(bundles) != 1:
        return _Sealed(manifest, None, Verdict(False, None, "the seal artifact needs one DSSE envelope and one "
                                                            "seal bundle"))
    envelope = parse_json(client.get_small_blob(envelopes[0], MAX_ARTIFACT_BYTES), "DSSE envelope")
    bundle_bytes = client.get_small_blob(bundles[0], MAX_ARTIFACT_BYTES)
    bundle = parse_json(bundle_bytes, "seal bundle")
    if not isinstance(bundle, dict) or bundle.get("envelope") != envelope:
        return _Sealed(manifest, None, Verdict(False, None, "the seal artifact's envelope differs from its bundle"))
    full = _with_seal(manifest, bundles[0], art.annotations.get(SEAL_INDEX_ANNOTATION))
    which = seal_digest(Envelope.from_json(envelope))
    mine = [p for p in proofs if p.annotations.get(SEAL_ANNOTATION) == which][:MAX_CANDIDATES]
    if not mine:
        return _Sealed(full, bundle_bytes, Verdict(False, None, "the seal has no proof artifact (log receipts); "
                                                                "it cannot be verified offline"))
    verdict: Verdict | None = None
    for proof_desc in mine:
        verdict = _check_proof(cert, client, full, bundle, digest, proof_desc, which)
        if verdict.certified:
            break
    assert verdict is not None
    return _Sealed(full, bundle_bytes, verdict)


def _check_proof(cert: Certification, client: OciClient, full: Manifest, bundle: dict[str, Any], digest: str,
                 desc: Descriptor, which: str) -> Verdict:
    art = _artifact(client, desc, digest)
    if art is None or art.annotations.get(SEAL_ANNOTATION) != which or len(art.layers) != 1:
        return Verdict(False, None, "the proof artifact does not belong to this seal")
    proof = parse_json(client.get_small_blob(art.layers[0], MAX_ARTIFACT_BYTES), "proof")
    return verify_sealed(cert, full, bundle, proof_evidence(proof), cert.zoo_keys())


def _with_seal(manifest: Manifest, bundle: Descriptor, index: str | None) -> Manifest:
    """The stored manifest: the model's layers with the SEAL layer back where the pushing zoo had it."""
    layer = Layer(mt.SEAL, bundle.digest, bundle.size, dict(bundle.annotations))
    layers = list(manifest.layers)
    at = int(index) if index is not None and index.isdigit() and int(index) <= len(layers) else len(layers)
    layers.insert(at, layer)
    return Manifest(manifest.config, tuple(layers))


def _seal_layer(manifest: Manifest) -> Layer:
    layer = manifest.first(mt.SEAL)
    assert layer is not None
    return layer
