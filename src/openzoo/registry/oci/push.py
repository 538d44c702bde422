"""``openzoo push NAME oci://HOST:PORT/REPO:TAG [--format F]``: a model into an OCI distribution registry.

The model goes in one format (:mod:`.formats`: ModelPack by default, Docker Model Runner, Ollama or
openzoo's own); its files are the stored blobs byte for byte whatever the format, only the manifest and
config differ. Order: every blob of the format's manifest (skipped when the registry has it; chunked and resumable,
:mod:`.uploads`), the model manifest under the tag, then the artifacts that refer to it — card, seal
(DSSE envelope and bundle) and proof (inclusion receipts of the seal and its approvals under this zoo's
signed log head, revocations) — and finally, on a registry without the referrers API, the referrers
index under the tag ``sha256-<hex of the model manifest digest>``. A pull can then verify the model
offline against this zoo's key (see :mod:`.pull`). Blobs are re-checked against their digests before
they leave, so a damaged store is never published.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from openzoo import names
from openzoo.certify.core import sealed_manifest
from openzoo.certify.dsse import Envelope
from openzoo.certify.seal import seal_digest
from openzoo.certify.service import Certification
from openzoo.errors import InvalidRequest, NotFound, OpenzooError, StoreCorrupt, VerificationFailed
from openzoo.events import Progress
from openzoo.facts.canonical import canonical_json, parse_json
from openzoo.facts.card import parse_card
from openzoo.registry.oci import formats
from openzoo.registry.oci.artifacts import (
    CARD_TYPE,
    DSSE_MEDIA_TYPE,
    EMPTY,
    EMPTY_JSON,
    MODEL_MANIFEST_TYPE,
    OCI_INDEX,
    OCI_MANIFEST,
    PROOF_TYPE,
    SEAL_ANNOTATION,
    SEAL_INDEX_ANNOTATION,
    SEAL_TYPE,
    Descriptor,
    OciManifest,
    artifact,
    parse_index,
    referrers_index,
)
from openzoo.registry.oci.client import OciClient, OciSettings
from openzoo.registry.oci.reference import OciReference, parse_reference
from openzoo.registry.oci.uploads import UploadState, upload_blob
from openzoo.registry.transfer import Throttle
from openzoo.registry.trust import build_proof
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store, StoredModel

__all__ = ["push_oci"]

_Opener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class _Artifact:
    """One artifact to attach: its manifest, a word for people, and the bytes of blobs the store lacks."""

    label: str
    manifest: OciManifest
    payloads: dict[str, bytes]


def push_oci(cert: Certification, settings: OciSettings, model: str, destination: str, *,
             fmt: str | None = None) -> Iterator[Progress]:
    """Push ``model`` to ``destination`` (``oci://HOST[:PORT]/REPO[:TAG]``) in format ``fmt``; see the module
    docstring. By default a model goes as ModelPack and a dataset in openzoo's format (ModelPack tools would
    find no weights in it; ``--format modelpack`` still writes it with ModelPack's dataset layers)."""
    store = cert.store
    ref = parse_reference(destination)
    if ref.digest or not ref.tag:
        raise InvalidRequest(f"push to a tag, not a digest: {ref.display}",
                             hint="use oci://HOST:PORT/REPO:TAG; the registry names the digest")
    stored = store.resolve(names.parse(model))
    full = stored.manifest
    sealed = sealed_manifest(full)
    fmt = fmt or (formats.DEFAULT if full.kind == "model" else "openzoo")
    built = formats.build(fmt, model_content(store, stored, sealed))
    model_manifest = built.manifest
    subject = model_manifest.descriptor()
    for digest in full.blob_digests():  # the seal bundle too
        problem = cert.verifier.check_blob(digest)
        if problem:
            raise StoreCorrupt(f"blob {digest[:19]}… of {model} {problem}: not pushing it")
    artifacts = _artifacts(cert, stored.digest, full, subject, model_manifest)
    client = OciClient(ref, settings)
    throttle = Throttle(settings.rate_limit)
    try:
        yield Progress(f"pushing {names.parse(model).display} to {ref.display} as {fmt}")
        for desc in (model_manifest.config, *model_manifest.layers):
            yield from _blob(client, store, ref, desc.digest, desc.size, _opener(store, built.payloads, desc.digest),
                             settings, throttle)
        yield Progress("pushing manifest")
        resp = client.put_manifest(ref.reference, model_manifest.to_bytes(), model_manifest.media_type)
        _check_digest(resp.headers.get("docker-content-digest"), subject.digest, ref.display)
        yield Progress(f"pushed {ref.display} ({subject.digest})")
        labels = [a.label for a in artifacts]
        if "seal" not in labels:
            yield Progress("WARNING: the model has no seal: pullers must use --insecure")
        elif "proof" not in labels:
            yield Progress("WARNING: this zoo holds no log receipts for the seal (it was sealed elsewhere and not "
                           "pulled with them): pullers will refuse it; push it from the zoo that sealed it")
        answered_by_api = False
        for item in artifacts:
            yield Progress(f"attaching the {item.label}")
            for desc in (item.manifest.config, *item.manifest.layers):
                yield from _blob(client, store, ref, desc.digest, desc.size, _opener(store, item.payloads, desc.digest),
                                 settings, throttle)
            data = item.manifest.to_bytes()
            resp = client.put_manifest(item.manifest.descriptor().digest, data, OCI_MANIFEST)
            _check_digest(resp.headers.get("docker-content-digest"), item.manifest.descriptor().digest, ref.display)
            answered_by_api = answered_by_api or resp.headers.get("oci-subject") == subject.digest
        if artifacts and not answered_by_api and client.referrers(subject.digest) is None:
            yield Progress("updating the referrers tag (the registry has no referrers API)")
            _update_fallback(client, subject.digest, [a.manifest.descriptor() for a in artifacts])
        yield Progress("success")
    finally:
        client.close()


def _blob(client: OciClient, store: Store, ref: OciReference, digest: str, size: int, opener: _Opener,
          settings: OciSettings, throttle: Throttle) -> Iterator[Progress]:
    state = UploadState.for_blob(Path(store.home), ref.host, ref.repository, digest)
    yield from upload_blob(client, state, digest, size, opener, chunk_bytes=settings.chunk_bytes, throttle=throttle)


def _opener(store: Store, payloads: Mapping[str, bytes], digest: str) -> _Opener:
    """Read an artifact blob from memory when the push made it, else from the store."""
    payload = payloads.get(digest)
    if payload is not None:
        return lambda: io.BytesIO(payload)
    return lambda: store.blobs.open(digest)


def _check_digest(answered: str | None, expected: str, where: str) -> None:
    if answered and answered != expected:
        raise VerificationFailed(f"the registry stored {where} as {answered}, not {expected}",
                                 hint="this registry rewrites manifests; use one that keeps them byte for byte")


def model_content(store: Store, stored: StoredModel, sealed: Manifest) -> formats.ModelContent:
    """What a format writer reads of a stored model: its sealed manifest, config, card and dates."""
    config = json.loads(store.blobs.read(sealed.config.digest))
    card_layer = sealed.card_layer()
    card = store.blobs.read(card_layer.digest).decode("utf-8", "replace") if card_layer else None
    license_id = None
    if card is not None:
        with contextlib.suppress(OpenzooError):
            license_id = parse_card(card).license_facts().id
    name = stored.entry.display.rsplit("/", 1)[-1]
    model, _, tag = name.partition(":")
    return formats.ModelContent(
        name=model, tag=tag or "latest", manifest=sealed, config=config if isinstance(config, dict) else {},
        license_id=license_id, created=datetime.fromtimestamp(stored.entry.created_at, UTC))


def _artifacts(cert: Certification, manifest_digest: str, full: Manifest, subject: Descriptor,
               pushed: OciManifest) -> list[_Artifact]:
    """The card, seal and proof artifacts of a model (those it has). The seal artifact also carries the
    openzoo manifest the seal signs and those of its blobs the pushed format does not list (its config,
    card, lineage… for a foreign format): the puller lands exactly the content the seal covers."""
    out: list[_Artifact] = []
    card = full.first(mt.CARD)
    if card is not None:
        layer = Descriptor(card.media_type, card.digest, card.size, dict(card.annotations))
        out.append(_Artifact("card", artifact(CARD_TYPE, [layer], subject), {EMPTY.digest: EMPTY_JSON}))
    seal = full.first(mt.SEAL)
    if seal is None:
        return out
    bundle = parse_json(cert.store.blobs.read(seal.digest), "seal")
    if not isinstance(bundle, dict) or "envelope" not in bundle:
        raise StoreCorrupt("the seal layer is not a seal bundle", hint="run 'openzoo verify' on the model")
    envelope = canonical_json(bundle["envelope"])
    which = {SEAL_ANNOTATION: seal_digest(Envelope.from_json(bundle["envelope"]))}
    dsse = Descriptor.of(DSSE_MEDIA_TYPE, envelope)
    position = {SEAL_INDEX_ANNOTATION: str(full.layers.index(seal))}
    sealed = sealed_manifest(full)
    signed = sealed.to_bytes()
    signed_desc = Descriptor.of(MODEL_MANIFEST_TYPE, signed)
    listed = {pushed.config.digest, *(x.digest for x in pushed.layers)}
    extras = [Descriptor(x.media_type, x.digest, x.size) for x in (sealed.config, *sealed.layers)
              if x.digest not in listed]
    layers = [dsse, Descriptor(seal.media_type, seal.digest, seal.size, dict(seal.annotations)), signed_desc,
              *dict((x.digest, x) for x in extras).values()]
    out.append(_Artifact("seal", artifact(SEAL_TYPE, layers, subject, {**which, **position}),
                         {EMPTY.digest: EMPTY_JSON, dsse.digest: envelope, signed_desc.digest: signed}))
    proof = build_proof(cert, manifest_digest, bundle)
    if proof is None:
        return out  # a seal without log receipts: pullers will say so and refuse it
    data = canonical_json(proof)
    proof_desc = Descriptor.of(PROOF_TYPE, data)
    out.append(_Artifact("proof", artifact(PROOF_TYPE, [proof_desc], subject, which),
                         {EMPTY.digest: EMPTY_JSON, proof_desc.digest: data}))
    return out


def _update_fallback(client: OciClient, subject: str, added: list[Descriptor]) -> None:
    """Rewrite the referrers index under the tag schema: openzoo's earlier card/seal/proof replaced, other
    tools' artifacts kept."""
    tag = "sha256-" + subject[7:]
    try:
        data, _, _ = client.get_manifest(tag)
        current = parse_index(data, f"{client.base} referrers tag {tag}")
    except NotFound:
        current = []
    client.put_manifest(tag, referrers_index(current, added, (CARD_TYPE, SEAL_TYPE, PROOF_TYPE)), OCI_INDEX)

