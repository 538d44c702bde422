"""From downloaded foreign blobs to an openzoo model: the content checks ``--insecure`` never waives, and
the manifest a pull lands.

Why here, after download and before landing: a seal vouches for bytes, not for their being safe to open,
and a model without a seal has nothing vouching for it at all. So every pull, certified or not, checks
what it is about to store: tar layers member by member (no absolute paths, no ``..``, no symlinks,
hardlinks, devices or fifos — refused, not skipped); GGUF structure, text layers and media types are
checked for every pull, from a zoo too, in :func:`openzoo.registry.landing.check_content`.

Then a foreign format's plan becomes an openzoo manifest:
its GGUF, template, system prompt, params and license as the model's own layers, a config read from the
GGUF, and — when the artifact has no card — a card drafted from the GGUF and the facts its config states
(a ModelPack descriptor, a Kitfile package).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from openzoo.errors import InvalidModelFile, InvalidRequest, OpenzooError
from openzoo.facts.card import card_from_metadata, parse_card
from openzoo.formats.gguf import model_config, validate_gguf
from openzoo.registry.oci.formats import Plan, Take
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store

__all__ = ["assemble", "open_member"]

MAX_MEMBERS = 10_000


def _refuse(where: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {why}: refused, nothing stored",
                          hint="the archive could write outside its folder or link elsewhere; do not use it")


def _check_member(info: tarfile.TarInfo, where: str) -> None:
    name = info.name
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise _refuse(where, f"tar member {name!r} has an absolute path")
    if ".." in path.parts:
        raise _refuse(where, f"tar member {name!r} climbs out of the archive (..)")
    if info.issym() or info.islnk():
        raise _refuse(where, f"tar member {name!r} is a link (to {info.linkname!r})")
    if not (info.isreg() or info.isdir()):
        raise _refuse(where, f"tar member {name!r} is a device, fifo or other special file")


def open_member(store: Store, take: Take, where: str) -> Iterator[bytes]:
    """The bytes of the file a tar layer holds, after every member of the archive passed the checks.

    The file is ``take.member`` itself, or the one ``.gguf`` below it when it names a folder (a Kitfile's
    model path may be either)."""
    assert take.member is not None
    gzip = take.desc.media_type.endswith("+gzip")
    try:
        with tarfile.open(store.blobs.path(take.desc.digest), "r:gz" if gzip else "r:") as archive:
            members = []
            for count, info in enumerate(archive, 1):
                if count > MAX_MEMBERS:
                    raise _refuse(where, f"the tar layer has more than {MAX_MEMBERS} members")
                _check_member(info, where)
                members.append(info)
            wanted = _pick(members, take, where)
            handle = archive.extractfile(wanted)
            if handle is None:
                raise _refuse(where, f"tar member {wanted.name!r} is not a file")
            while chunk := handle.read(1 << 20):
                yield chunk
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidRequest(f"{where}: layer {take.desc.digest[:19]}… is not a readable tar archive ({exc}): "
                             "refused, nothing stored", hint="the artifact is damaged; ask its publisher") from exc


def _pick(members: list[tarfile.TarInfo], take: Take, where: str) -> tarfile.TarInfo:
    want = (take.member or "").strip("/")
    files = [m for m in members if m.isreg()]
    exact = [m for m in files if m.name.strip("/").removeprefix("./") == want.removeprefix("./")]
    if exact:
        return exact[0]
    below = [m for m in files if (not want or m.name.removeprefix("./").startswith(want.removeprefix("./") + "/"))
             and m.name.lower().endswith(".gguf")]
    if take.media_type in (mt.MODEL, mt.ADAPTER) and len(below) == 1:
        return below[0]
    if len(files) == 1 and not want:
        return files[0]
    raise InvalidRequest(f"{where}: the tar layer {take.desc.digest[:19]}… holds no single file {want or '*.gguf'} "
                         f"({len(files)} files): refused, nothing stored", hint="openzoo lands one GGUF file")


def assemble(store: Store, plan: Plan, title: str, where: str, created: list[str]) -> Manifest:
    """The openzoo manifest of a downloaded plan; blobs it makes (files out of tar layers, config, card) are
    appended to ``created`` as soon as they exist, so a refusal can remove them."""
    layers: list[Layer] = []
    for take in plan.takes:
        if take.archive:
            blob = store.blobs.put(open_member(store, take, where))
            created.append(blob.digest)
            layers.append(Layer(take.media_type, blob.digest, blob.size, dict(take.annotations)))
        else:
            layers.append(Layer(take.media_type, take.desc.digest, take.desc.size, dict(take.annotations)))
    layers = [x for x in layers if x.media_type != mt.CARD or _is_card(store, x)]
    if plan.config is not None:  # openzoo's own format: the manifest as it was
        return Manifest(Layer(plan.config.media_type, plan.config.digest, plan.config.size,
                              dict(plan.config.annotations)), tuple(layers))
    weights = next(x for x in layers if x.media_type == mt.MODEL)
    try:
        info = validate_gguf(store.blobs.path(weights.digest))
    except InvalidModelFile as exc:
        raise InvalidModelFile(f"{where}: the weights are not a valid GGUF file ({exc.message}): refused, nothing "
                               "stored", hint="the artifact is damaged or not a GGUF model") from exc
    facts = plan.facts
    extra: dict[str, Any] = {"source_format": plan.format}
    for key, target in (("authors", "authors"), ("description", "description"), ("sourceURL", "source_url")):
        if facts.get(key):
            extra[target] = facts[key]
    config = store.blobs.put_bytes(mt.canonical_json(model_config(info, extra)))
    created.append(config.digest)
    if not any(x.media_type == mt.CARD for x in layers):
        card = card_from_metadata(_card_metadata(info.metadata(), facts), _license(facts),
                                  name=str(facts.get("name") or title))
        card_blob = store.blobs.put_bytes(card.render().encode("utf-8"))
        created.append(card_blob.digest)
        layers.append(Layer(mt.CARD, card_blob.digest, card_blob.size))
    return Manifest(Layer(mt.CONFIG_MEDIA_TYPE, config.digest, config.size), tuple(layers))


def _is_card(store: Store, layer: Layer) -> bool:
    """A README a foreign artifact carries is its card only when it parses as one (else one is drafted)."""
    try:
        parse_card(store.blobs.read(layer.digest).decode("utf-8"))
    except (UnicodeDecodeError, OpenzooError):
        return False
    return True


def _license(facts: Mapping[str, Any]) -> str | None:
    value = facts.get("license_id") or (facts.get("licenses") or [None])[0]
    return str(value) if value else None


def _card_metadata(meta: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """GGUF metadata with what the publisher's config states laid over it (it is the fresher claim)."""
    out = dict(meta)
    for key, target in (("description", "general.description"), ("sourceURL", "general.source.url"),
                        ("vendor", "general.organization")):
        if facts.get(key):
            out[target] = str(facts[key])
    if facts.get("authors"):
        out["general.author"] = ", ".join(str(x) for x in facts["authors"])
    return out
