"""Where a pull ends, for every source (another zoo, an OCI registry): blobs fetched or reused, then — only
after verification — tagged and recorded; or, when refused, the new blobs removed again.

Why shared: the rules that make a refused pull leave nothing behind and a certified pull verifiable
offline later (``openzoo verify``) must not differ between sources.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator

from openzoo import names
from openzoo.certify.service import Certification
from openzoo.errors import (
    DigestMismatch,
    InvalidData,
    InvalidModelFile,
    InvalidRequest,
    NotSupported,
    OpenzooError,
    VerificationFailed,
)
from openzoo.events import Progress
from openzoo.facts.card import parse_card
from openzoo.formats.gguf import validate_gguf
from openzoo.names import ModelName
from openzoo.registry.trust import Verdict, remember_proof
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

__all__ = ["check_content", "fetch_blobs", "land"]

Download = Callable[[str, int], Iterator[Progress]]


def fetch_blobs(store: Store, cert: Certification, blobs: Iterable[tuple[str, int]], download: Download,
                fetched: list[str]) -> Iterator[Progress]:
    """Make every ``(digest, size)`` present in the store: a stored blob is re-checked (a damaged one is
    fetched again), a missing one is downloaded and added to ``fetched`` as soon as it is in place (so a
    pull refused half-way knows what to remove: ``Store.remove_unreferenced``)."""
    for digest, size in blobs:
        if store.blobs.exists(digest) and store.blobs.size(digest) != size:
            raise DigestMismatch(f"the manifest declares {size} bytes for blob {digest[7:19]}…, which this zoo "
                                 f"holds as {store.blobs.size(digest)} bytes: refused, nothing stored",
                                 hint="the manifest is damaged or was tampered with; do not use it")
        if store.blobs.exists(digest):
            if cert.verifier.check_blob(digest):
                store.blobs.delete(digest)
            else:
                yield Progress(f"pulling {digest[7:19]}", digest=digest, total=size, completed=size)
                continue
        yield from download(digest, size)
        fetched.append(digest)


def check_content(store: Store, manifest: Manifest, display: str) -> Iterator[Progress]:
    """Re-read what digests cannot vouch for, before a seal is trusted and even with ``--insecure`` (which
    waives the seal, never these): every layer of a media type openzoo stores, GGUF weights and adapters
    whose structure holds, text layers that are UTF-8 (params a JSON object, a card that
    parses), and a dataset's every row against its config (rows, columns, data
    digest) — a manifest pointing at other content than it describes is refused, whoever signed it."""
    unknown = [x.media_type for x in manifest.layers if x.media_type not in mt.LAYER_TYPES]
    if unknown:
        raise NotSupported(f"refused {display}: layer of unknown media type {unknown[0][:80]!r}, nothing stored",
                           hint="openzoo stores only layers it can check")
    for layer in manifest.layers:
        if layer.media_type in (mt.MODEL, mt.ADAPTER):
            try:
                validate_gguf(store.blobs.path(layer.digest))
            except InvalidModelFile as exc:
                raise InvalidModelFile(f"refused {display}: its {layer.media_type.rsplit('.', 1)[-1]} layer is not "
                                       f"a valid GGUF file ({exc.message}), nothing stored",
                                       hint="the artifact is damaged or not a GGUF model") from exc
    _check_text_layers(store, manifest, display)
    if manifest.kind != "dataset":
        return
    from openzoo.datasets.service import check_manifest

    yield Progress(f"checking every row of {display}")
    try:
        check_manifest(store, manifest)
    except InvalidData as exc:
        raise VerificationFailed(f"refused {display}: {exc.message}") from exc


def land(store: Store, cert: Certification, name: ModelName, manifest: Manifest, *, source: str,
         verdict: Verdict) -> Iterator[Progress]:
    """Tag a pulled (verified, or ``--insecure``) manifest under ``name`` and, when free, its short name,
    recording where it came from and the evidence that makes ``openzoo verify`` work offline."""
    yield Progress("writing manifest")
    tagged = [name]
    short = names.parse(f"{name.namespace}/{name.model}:{name.tag}")
    if short.key != name.key and _may_take_short_name(store, cert, short, source, manifest):
        tagged.append(short)
    for target in tagged:
        digest = store.tag(ModelName(target.host, target.namespace, target.model, target.tag), manifest)
        cert.record_pull(target, source=source, zoo=verdict.zoo, certified=verdict.certified,
                         manifest_digest=digest, receipt=verdict.receipt, revocations=verdict.revocations,
                         head=verdict.head)
        remember_proof(cert, digest, verdict)
    now = time.time()
    for digest in manifest.blob_digests():
        store.catalog.mark_verified(digest, now)
    yield Progress("tagged as certified" if verdict.certified else "tagged as uncertified")


def _may_take_short_name(store: Store, cert: Certification, short: ModelName, source: str,
                         manifest: Manifest) -> bool:
    """Tag the pulled model under its short name too (``gemma3:270m``) when that name is free, came from the
    same source before, or holds an unsealed model with the very same weights (e.g. the embedded default)."""
    entry = store.catalog.find(short)
    if entry is None:
        return True
    pulled = cert.pulled(short)
    if pulled is not None and pulled["source"] == source:
        return True
    local = store.load_manifest(entry.manifest_digest)
    weights, theirs = local.first(mt.MODEL), manifest.first(mt.MODEL)
    return (local.first(mt.SEAL) is None and weights is not None and theirs is not None
            and weights.digest == theirs.digest)


_TEXT = (mt.TEMPLATE, mt.SYSTEM, mt.PARAMS, mt.LICENSE, mt.MESSAGES, mt.CARD, mt.DATASHEET)
MAX_TEXT_BYTES = 16 << 20


def _check_text_layers(store: Store, manifest: Manifest, where: str) -> None:
    """Text layers must be UTF-8; params a JSON object; messages a JSON list; cards must parse. (A template
    is checked where it is used: Ollama's templates use constructs openzoo may not translate yet, and that
    must not keep a model out.)"""
    for layer in manifest.layers:
        if layer.media_type not in _TEXT:
            continue
        if layer.size > MAX_TEXT_BYTES:
            raise InvalidRequest(f"{where}: the {layer.media_type} layer is {layer.size} bytes; text layers are "
                                 "small: refused, nothing stored")
        try:
            text = store.blobs.read(layer.digest).decode("utf-8")
            if layer.media_type == mt.PARAMS:
                value = json.loads(text)
                if not isinstance(value, dict):
                    raise ValueError("params is not a JSON object")
            elif layer.media_type == mt.MESSAGES and not isinstance(json.loads(text), list):
                raise ValueError("messages is not a JSON list")
            elif layer.media_type in (mt.CARD, mt.DATASHEET):
                parse_card(text)
        except (UnicodeDecodeError, ValueError, OpenzooError) as exc:
            why = exc.message if isinstance(exc, OpenzooError) else str(exc)
            raise InvalidRequest(f"{where}: the {layer.media_type} layer is not valid ({why}): refused, nothing "
                                 "stored", hint="the artifact is damaged or not what it says; ask its publisher"
                                 ) from exc
