"""``openzoo pull oci://HOST:PORT/REPO:TAG``: a model from an OCI distribution registry, verified offline.

Order, and why: the manifest first (its sha256 must match the digest asked for and the one the registry
names, then it is validated and its format recognised: :mod:`.formats`) and its config; then the referrers
(referrers API, else the ``sha256-<hex>`` tag), each read from its own manifest, for the card, seal and
proof artifacts; then verification against the pinned zoo keys — seal signature, files, card, policy,
quorum, logged approvals and inclusion under a signed log head, revocations
(:func:`openzoo.registry.trust.verify_sealed`) — of the openzoo manifest the seal artifact carries, which
must be exactly what the registry holds; a model that does not verify is refused here, before anything
large moves, unless ``--insecure``. Then the blobs, each into a resumable partial file, cut off past its
declared size and re-hashed (a blob already held must have the declared size); then the content checks
``--insecure`` never waives (:func:`openzoo.registry.landing.check_content`, tar members in
:mod:`.assemble`). Only then are the seal bundle, the manifest and the tag written: the sealed manifest
itself, or with ``--insecure`` the model translated from its format, recorded as uncertified. A refusal
leaves no new model and no new blob behind. A transfer that merely broke off
(:class:`~openzoo.registry.transfer.TransferFailed`) keeps its partial file and the blobs already complete,
so the next run resumes (start-up clean-up sweeps them after an hour if it never comes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openzoo import names
from openzoo.certify.core import sealed_manifest
from openzoo.certify.dsse import Envelope
from openzoo.certify.seal import seal_digest
from openzoo.certify.service import Certification
from openzoo.errors import (
    DigestMismatch,
    InvalidRequest,
    NotFound,
    NotSupported,
    OpenzooError,
    TransferFailed,
    VerificationFailed,
)
from openzoo.events import Progress
from openzoo.facts.canonical import parse_json, sha256_digest
from openzoo.registry.landing import check_content, fetch_blobs, land
from openzoo.registry.oci import formats
from openzoo.registry.oci.artifacts import (
    CARD_TYPE,
    DSSE_MEDIA_TYPE,
    MODEL_MANIFEST_TYPE,
    OCI_MANIFEST,
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
from openzoo.registry.oci.assemble import assemble
from openzoo.registry.oci.client import OciClient, OciSettings
from openzoo.registry.oci.formats.base import MAX_CONFIG_BYTES
from openzoo.registry.oci.reference import parse_reference
from openzoo.registry.transfer import Throttle, download_blob
from openzoo.registry.trust import Verdict, proof_evidence, verify_sealed
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest

__all__ = ["pull_oci"]

MAX_CANDIDATES = 8  # seal artifacts tried per model; a registry cannot make a pull try forever
MAX_ARTIFACT_BYTES = 4 << 20
MAX_REFERRERS = 32  # referrer manifests read per model


@dataclass
class _Sealed:
    """The model as it will be stored with one seal candidate, and what verifying it concluded."""

    manifest: Manifest | None
    bundle_bytes: bytes | None
    verdict: Verdict


def pull_oci(cert: Certification, settings: OciSettings, reference: str, *, insecure: bool = False,
             name: str | None = None) -> Iterator[Progress]:
    """Pull ``reference`` and tag it as ``name`` (default: from the reference); see the module docstring."""
    store = cert.store
    ref = parse_reference(reference)
    target = names.parse(name) if name else ref.local_name()
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
        _refuse_artifact(oci, ref.display)
        fmt = formats.recognise(oci, ref.display)
        config = client.get_small_blob(oci.config, MAX_CONFIG_BYTES)
        yield Progress(f"a {fmt} model")
        yield Progress("fetching referrers")
        referrers = _referrer_artifacts(client, digest)
        yield Progress(f"verifying the seal of {ref.display}")
        sealed = _verify(cert, client, oci, fmt, digest, referrers)
        verdict = sealed.verdict

        def download(blob: str, size: int) -> Iterator[Progress]:
            yield from download_blob(store, client.http, client.path("blobs", blob), blob, size, source=client.base,
                                     raise_for=lambda resp: client.raise_for(resp, f"blob {blob[:19]}…"),
                                     throttle=throttle)

        if verdict.certified and sealed.manifest is not None:
            manifest = sealed.manifest
            base = sealed_manifest(manifest)
            blobs = [(base.config.digest, base.config.size)] + [(x.digest, x.size) for x in base.layers]
            yield from fetch_blobs(store, cert, blobs, download, fetched)
        else:
            if not insecure:
                raise VerificationFailed(f"refused {ref.display}: {verdict.reason}",
                                         hint="pull with --insecure to keep it, marked uncertified")
            yield Progress(f"WARNING: {verdict.reason}; keeping it uncertified (--insecure)")
            plan = formats.plan(fmt, oci, config, ref.display)
            for note in plan.skipped:
                yield Progress(f"left out: {note}")
            blobs = [(t.desc.digest, t.desc.size) for t in plan.takes]
            if plan.config is not None:
                blobs.insert(0, (plan.config.digest, plan.config.size))
            yield from fetch_blobs(store, cert, dict(blobs).items(), download, fetched)
            manifest = assemble(store, plan, target.display, ref.display, fetched)
            sealed = _Sealed(None, None, verdict)
        yield Progress("verifying sha256 digest")
        yield from check_content(store, manifest, ref.display)
        if verdict.certified:  # said here, in Ollama's order: after the digests, before the manifest is written
            yield Progress(f"verified against {verdict.zoo}: {verdict.reason}")
        if sealed.bundle_bytes is not None:
            info = store.blobs.put([sealed.bundle_bytes], expected=_seal_layer(manifest).digest)
            fetched.append(info.digest)
        yield from land(store, cert, target, manifest, source=f"oci://{ref.host}/{ref.repository}",
                        verdict=verdict)
        store.remove_unreferenced(fetched)  # tar layers a file was taken out of
        yield Progress("success")
    except TransferFailed:
        raise  # what arrived stays, for the next run to resume
    except BaseException:
        store.remove_unreferenced(fetched)
        raise
    finally:
        client.close()


def _refuse_artifact(oci: OciManifest, where: str) -> None:
    """A referrer (card, seal, another tool's signature) is not a model."""
    if oci.subject is not None:
        raise NotSupported(f"{where} is an artifact attached to {oci.subject.digest[:19]}…, not a model",
                           hint="pull the manifest it refers to")
    if any(x.media_type == mt.SEAL for x in oci.layers):
        raise InvalidRequest(f"{where} carries a seal layer; openzoo seals travel as referrer artifacts: refused",
                             hint="push the model with 'openzoo push NAME oci://...'")


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


def _referrer_artifacts(client: OciClient, digest: str) -> list[OciManifest]:
    """The artifacts referring to ``digest``, each read from its own manifest: its ``artifactType`` (else its
    config media type) and annotations are what count, never the index entry's — mirroring tools (skopeo
    ``copy --all``) rewrite the referrers index and drop those, and a registry could lie in it."""
    found: list[OciManifest] = []
    for desc in _referrers(client, digest)[:MAX_REFERRERS]:
        if desc.media_type != OCI_MANIFEST:
            continue  # an index or a foreign manifest kind: no openzoo artifact
        try:
            art = _artifact(client, desc, digest)
        except NotFound:
            continue  # a dangling index entry
        if art is not None:
            found.append(art)
    return found


def _type(art: OciManifest) -> str:
    return art.artifact_type or art.config.media_type


def _verify(cert: Certification, client: OciClient, oci: OciManifest, fmt: str, digest: str,
            referrers: list[OciManifest]) -> _Sealed:
    """Try the seal artifacts in order; the first that verifies wins, else the first one's failure."""
    seals = [a for a in referrers if _type(a) == SEAL_TYPE][:MAX_CANDIDATES]
    proofs = [a for a in referrers if _type(a) == PROOF_TYPE]
    cards = [a for a in referrers if _type(a) == CARD_TYPE][:MAX_CANDIDATES]
    if not seals:
        return _Sealed(None, None, Verdict(False, None, "the model has no seal artifact"))
    first: _Sealed | None = None
    for art in seals:
        try:
            candidate = _try_seal(cert, client, oci, fmt, art, proofs, cards)
        except (OpenzooError, KeyError, TypeError, ValueError) as exc:
            candidate = _Sealed(None, None, Verdict(False, None, f"the seal cannot be verified: {exc}"))
        if candidate.verdict.certified:
            return candidate
        first = first or candidate
    assert first is not None
    return first


def _signed_manifest(client: OciClient, oci: OciManifest, fmt: str, art: OciManifest) -> Manifest | str:
    """The openzoo manifest a seal artifact says its seal signs (or, for an openzoo-format push that predates
    it, the pushed manifest itself), checked to be carried by the registry: every blob of it listed, with
    the same size, by the pushed manifest or the seal artifact, and every file the pushed manifest lists
    covered by it. A string says why not."""
    carried = [x for x in art.layers if x.media_type == MODEL_MANIFEST_TYPE]
    where = f"{client.base} seal artifact"
    if len(carried) == 1:
        data = client.get_small_blob(carried[0], MAX_ARTIFACT_BYTES)
        base = from_oci(parse_manifest(data, mt.MANIFEST_MEDIA_TYPE, where))
        if base.to_bytes() != data:
            return "the manifest in the seal artifact is not in openzoo's canonical form"
    elif not carried and fmt == "openzoo":
        base = from_oci(oci)
    else:
        return "the seal artifact does not carry the openzoo manifest its seal signs"
    if base.first(mt.SEAL) is not None:
        return "the manifest in the seal artifact has a seal layer"
    own = (DSSE_MEDIA_TYPE, mt.SEAL, MODEL_MANIFEST_TYPE)
    offered = {x.digest: x.size for x in (oci.config, *oci.layers)}
    offered.update({x.digest: x.size for x in art.layers if x.media_type not in own})
    for blob in (base.config, *base.layers):
        if offered.get(blob.digest) != blob.size:
            return (f"the sealed {blob.media_type} {blob.digest[:19]}… ({blob.size} bytes) is not carried by the "
                    "registry as declared")
    covered = set(base.blob_digests())
    files = oci.layers if fmt != "openzoo" else (oci.config, *oci.layers)
    stray = [x for x in files if x.digest not in covered]
    if stray:
        return f"the pushed manifest lists a file the seal does not cover ({stray[0].digest[:19]}…)"
    return base


def _try_seal(cert: Certification, client: OciClient, oci: OciManifest, fmt: str, art: OciManifest,
              proofs: list[OciManifest], cards: list[OciManifest]) -> _Sealed:
    envelopes = [x for x in art.layers if x.media_type == DSSE_MEDIA_TYPE]
    bundles = [x for x in art.layers if x.media_type == mt.SEAL]
    if len(envelopes) != 1 or len(bundles) != 1:
        return _Sealed(None, None, Verdict(False, None, "the seal artifact needs one DSSE envelope and one "
                                                        "seal bundle"))
    base = _signed_manifest(client, oci, fmt, art)
    if isinstance(base, str):
        return _Sealed(None, None, Verdict(False, None, base))
    card = base.first(mt.CARD)
    for card_art in cards:
        if card is not None and [x.digest for x in card_art.layers] != [card.digest]:
            return _Sealed(None, None, Verdict(False, None, "the card artifact differs from the model's card"))
    envelope = parse_json(client.get_small_blob(envelopes[0], MAX_ARTIFACT_BYTES), "DSSE envelope")
    bundle_bytes = client.get_small_blob(bundles[0], MAX_ARTIFACT_BYTES)
    bundle = parse_json(bundle_bytes, "seal bundle")
    if not isinstance(bundle, dict) or bundle.get("envelope") != envelope:
        return _Sealed(None, None, Verdict(False, None, "the seal artifact's envelope differs from its bundle"))
    full = _with_seal(base, bundles[0], art.annotations.get(SEAL_INDEX_ANNOTATION))
    which = seal_digest(Envelope.from_json(envelope))
    mine = [p for p in proofs if p.annotations.get(SEAL_ANNOTATION) == which][:MAX_CANDIDATES]
    if not mine:
        return _Sealed(full, bundle_bytes, Verdict(False, None, "the seal has no proof artifact (log receipts); "
                                                                "it cannot be verified offline"))
    verdict: Verdict | None = None
    for proof_art in mine:
        verdict = _check_proof(cert, client, full, bundle, proof_art)
        if verdict.certified:
            break
    assert verdict is not None
    return _Sealed(full, bundle_bytes, verdict)


def _check_proof(cert: Certification, client: OciClient, full: Manifest, bundle: dict[str, Any],
                 art: OciManifest) -> Verdict:
    if len(art.layers) != 1:
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
