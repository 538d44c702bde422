"""The openzoo ↔ OCI manifest mapping (lossless, deterministic), artifacts, referrers indexes, and the
validation of what a registry sends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openzoo.errors import InvalidRequest, NotSupported, PayloadTooLarge
from openzoo.facts.canonical import sha256_digest
from openzoo.registry.oci.artifacts import (
    CARD_TYPE,
    EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    PROOF_TYPE,
    SEAL_TYPE,
    Descriptor,
    artifact,
    from_oci,
    parse_index,
    parse_manifest,
    referrers_index,
    to_oci,
)
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest


def d(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


MODEL = Manifest(
    Layer(mt.CONFIG_MEDIA_TYPE, d(1), 314),
    (Layer(mt.MODEL, d(2), 2_098_240), Layer(mt.LICENSE, d(3), 11, {"org.openzoo.license.id": "Apache-2.0"}),
     Layer(mt.CARD, d(4), 900), Layer(mt.LICENSE_FACTS, d(5), 70)),
)
DATASET = Manifest(Layer("application/vnd.openzoo.dataset.config.v1+json", d(6), 40, {"k": "v"}),
                   (Layer("application/vnd.openzoo.dataset.shard.v1+jsonl", d(7), 1 << 20),))


@pytest.mark.parametrize("manifest", [MODEL, DATASET], ids=["model", "dataset"])
def test_mapping_is_lossless_and_deterministic(manifest: Manifest) -> None:
    oci = to_oci(manifest)
    data = oci.to_bytes()
    assert data == to_oci(manifest).to_bytes()
    back = from_oci(parse_manifest(data, OCI_MANIFEST, "test"))
    assert back == manifest
    assert back.to_bytes() == manifest.to_bytes()  # the digest a seal signs is rebuilt exactly
    raw = json.loads(data)
    assert raw["mediaType"] == OCI_MANIFEST and raw["schemaVersion"] == 2
    assert raw["config"]["mediaType"] == manifest.config.media_type
    assert "subject" not in raw and "artifactType" not in raw and "annotations" not in raw


def test_seal_layer_never_goes_into_the_model_manifest() -> None:
    sealed = Manifest(MODEL.config, (*MODEL.layers, Layer(mt.SEAL, d(9), 5000)))
    with pytest.raises(InvalidRequest, match="without its seal layer"):
        to_oci(sealed)


def test_artifacts_refer_to_their_subject() -> None:
    subject = to_oci(MODEL).descriptor()
    assert subject.digest == sha256_digest(to_oci(MODEL).to_bytes())
    card = artifact(CARD_TYPE, [Descriptor(mt.CARD, d(4), 900)], subject)
    raw = json.loads(card.to_bytes())
    assert raw["artifactType"] == CARD_TYPE
    assert raw["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY.digest, "size": 2}
    assert raw["subject"] == {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size}
    parsed = parse_manifest(card.to_bytes(), OCI_MANIFEST, "test")
    assert parsed.subject == Descriptor(OCI_MANIFEST, subject.digest, subject.size)
    assert parsed.artifact_type == CARD_TYPE


def test_referrers_index_replaces_openzoo_artifacts_and_keeps_others() -> None:
    old_seal = Descriptor(OCI_MANIFEST, d(10), 500, artifact_type=SEAL_TYPE)
    sbom = Descriptor(OCI_MANIFEST, d(11), 400, artifact_type="application/spdx+json")
    new_seal = Descriptor(OCI_MANIFEST, d(12), 500, {"dev.openzoo.seal.digest": d(13)}, SEAL_TYPE)
    proof = Descriptor(OCI_MANIFEST, d(14), 300, artifact_type=PROOF_TYPE)
    data = referrers_index([old_seal, sbom], [new_seal, proof], (CARD_TYPE, SEAL_TYPE, PROOF_TYPE))
    assert json.loads(data)["mediaType"] == OCI_INDEX
    assert parse_index(data, "test") == [sbom, new_seal, proof]
    again = referrers_index(parse_index(data, "test"), [new_seal, proof], (SEAL_TYPE, PROOF_TYPE))
    assert again == data  # pushing the same artifacts twice changes nothing


def _manifest(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(to_oci(MODEL).to_bytes())
    raw.update(changes)
    return raw


def _layer(**changes: Any) -> dict[str, Any]:
    return {"mediaType": mt.MODEL, "digest": d(2), "size": 10, **changes}


@pytest.mark.parametrize(("data", "words"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps(_manifest(schemaVersion=1)).encode(), "schemaVersion"),
    (json.dumps(_manifest(schemaVersion=True)).encode(), "schemaVersion"),
    (json.dumps(_manifest(config=None)).encode(), "config is not an object"),
    (json.dumps(_manifest(layers=[])).encode(), "non-empty list"),
    (json.dumps(_manifest(layers="x")).encode(), "non-empty list"),
    (json.dumps(_manifest(layers=[_layer(size=-1)])).encode(), "non-negative integer"),
    (json.dumps(_manifest(layers=[_layer(size=True)])).encode(), "non-negative integer"),
    (json.dumps(_manifest(layers=[_layer(size="10")])).encode(), "non-negative integer"),
    (json.dumps(_manifest(layers=[_layer(digest="sha512:" + "ab" * 64)])).encode(), "only sha256"),
    (json.dumps(_manifest(layers=[_layer(digest="sha256:../../etc/passwd")])).encode(), "only sha256"),
    (json.dumps(_manifest(layers=[_layer(mediaType="not a type")])).encode(), "is not a media type"),
    (json.dumps(_manifest(layers=[_layer(mediaType=7)])).encode(), "is not a media type"),
    (json.dumps(_manifest(layers=[_layer(annotations={"a": 1})])).encode(), "strings to strings"),
    (json.dumps(_manifest(layers=[_layer(urls=["http://elsewhere/x"])])).encode(), "outside the registry"),
    (json.dumps(_manifest(layers=[_layer()] * 1001)).encode(), "more than 1000"),
    (json.dumps(_manifest(subject={"mediaType": OCI_MANIFEST})).encode(), "subject.digest"),
    (json.dumps(_manifest(annotations=["x"])).encode(), "annotations"),
])
def test_malformed_manifests_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_manifest(data, OCI_MANIFEST, "oci://h/r:t")
    assert words in info.value.message and "nothing stored" in info.value.message


@pytest.mark.parametrize(("raw", "content_type", "words"), [
    ({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, OCI_INDEX, "image index"),
    (_manifest(mediaType="application/vnd.docker.distribution.manifest.v1+json"), None, "manifest media type"),
    (_manifest(layers=[_layer(mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]), OCI_MANIFEST,
     "container image"),
    (_manifest(config={"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(1), "size": 2}),
     OCI_MANIFEST, "container image"),
])
def test_wrong_media_types_are_refused(raw: dict[str, Any], content_type: str | None, words: str) -> None:
    with pytest.raises(NotSupported) as info:
        parse_manifest(json.dumps(raw).encode(), content_type, "oci://h/r:t")
    assert words in info.value.message


def test_content_type_must_agree_with_the_body() -> None:
    with pytest.raises(InvalidRequest, match="served as"):
        parse_manifest(to_oci(MODEL).to_bytes(), mt.MANIFEST_MEDIA_TYPE, "oci://h/r:t")
    raw = _manifest()
    del raw["mediaType"]
    assert from_oci(parse_manifest(json.dumps(raw).encode(), OCI_MANIFEST, "t")) == MODEL  # the header decides


def test_docker_v2_manifests_are_read_too() -> None:
    assert from_oci(parse_manifest(MODEL.to_bytes(), mt.MANIFEST_MEDIA_TYPE, "t")) == MODEL


def test_oversized_manifests_are_refused() -> None:
    big = json.dumps(_manifest(annotations={"x": "y" * (4 << 20)})).encode()
    with pytest.raises(PayloadTooLarge):
        parse_manifest(big, OCI_MANIFEST, "t")


def test_index_validation() -> None:
    with pytest.raises(InvalidRequest, match="media type"):
        parse_index(json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "manifests": []}).encode(), "t")
    with pytest.raises(InvalidRequest, match="list of at most"):
        parse_index(json.dumps({"schemaVersion": 2, "manifests": {}}).encode(), "t")
    assert parse_index(json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "t") == []
