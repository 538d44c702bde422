"""Landing a foreign plan: tar layers checked member by member before a file is taken out of them, and the
openzoo manifest made from the GGUF and the publisher's facts (config, drafted card)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from openzoo.errors import InvalidRequest
from openzoo.registry.oci.artifacts import Descriptor
from openzoo.registry.oci.assemble import assemble
from openzoo.registry.oci.formats import Plan, Take
from openzoo.store import manifests as mt
from openzoo.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "home")
    yield opened
    opened.close()


def archive(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo,
                                                                                                   bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def plan_of(store: Store, data: bytes, media_type: str, path: str, **facts: object) -> Plan:
    info = store.blobs.put_bytes(data)
    return Plan("kitops", (Take(Descriptor(media_type, info.digest, info.size), mt.MODEL, path),), facts=facts)


TAR = "application/vnd.kitops.modelkit.model.v1.tar"


def test_a_gguf_is_taken_out_of_a_checked_tar_and_a_card_drafted_from_the_facts(store: Store,
                                                                                 tiny_gguf: Path) -> None:
    weights = tiny_gguf.read_bytes()
    folder = tarfile.TarInfo("models")
    folder.type = tarfile.DIRTYPE
    for mode, media_type in (("w", TAR), ("w:gz", TAR + "+gzip")):
        data = archive([(folder, None), member("models/tiny.gguf", weights), member("models/notes.txt", b"x")], mode)
        created: list[str] = []
        manifest = assemble(store, plan_of(store, data, media_type, "models", name="tiny-kit", license_id="MIT",
                                           authors=["kit"], description="packed by hand"),
                            "kit/tiny:v1", "here", created)
        weights_layer = manifest.first(mt.MODEL)
        assert weights_layer is not None and store.blobs.read(weights_layer.digest) == weights
        config = json.loads(store.blobs.read(manifest.config.digest))
        assert config["source_format"] == "kitops" and config["authors"] == ["kit"]
        assert config["model_format"] == "gguf" and config["description"] == "packed by hand"
        card = manifest.first(mt.CARD)
        assert card is not None
        text = store.blobs.read(card.digest).decode()
        assert "license: mit" in text and "packed by hand" in text and "kit" in text
        assert weights_layer.digest in created and card.digest in created and manifest.config.digest in created


@pytest.mark.parametrize(("members", "words"), [
    ([member("../evil", b"x"), member("tiny.gguf", b"GGUF")], "climbs out of the archive"),
    ([member("/etc/evil", b"x")], "absolute path"),
    ([member("tiny.gguf", kind=tarfile.SYMTYPE, link="/etc/passwd")], "is a link"),
    ([member("a", b"x"), member("tiny.gguf", kind=tarfile.LNKTYPE, link="a")], "is a link"),
    ([member("tiny.gguf", kind=tarfile.CHRTYPE)], "device, fifo or other special file"),
    ([member("tiny.gguf", kind=tarfile.FIFOTYPE)], "device, fifo or other special file"),
    ([member("a.gguf", b"x"), member("b.gguf", b"y")], "holds no single file"),
])
def test_bad_tar_members_are_refused_before_anything_is_taken(store: Store, members: list[tuple[tarfile.TarInfo,
                                                                                                 bytes | None]],
                                                              words: str) -> None:
    created: list[str] = []
    with pytest.raises(InvalidRequest, match=words):
        assemble(store, plan_of(store, archive(members), TAR, ""), "x/y:z", "here", created)
    assert created == []


def test_a_layer_that_is_not_a_tar_is_refused(store: Store) -> None:
    with pytest.raises(InvalidRequest, match="not a readable tar archive"):
        assemble(store, plan_of(store, b"not a tar" * 200, TAR, "tiny.gguf"), "x/y:z", "here", [])
