"""Issue 11, part 1, with real processes: ``openzoo push``/``pull`` against a real ``docker-registry``
(CNCF distribution 2.8, which has no referrers API, so the tag-schema fallback is what carries the
seal), oras-py as a second client both ways, and refusals — a tampered blob, manifest or seal, and bad
input — that leave the pulling zoo's store exactly as it was.

Zoo A holds a small certified model (a synthetic 4 MB GGUF sealed after a 2-of-3 quorum); each pull goes
into a fresh zoo B that pinned A's key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.client
import pytest

from openzoo.certify.dsse import Envelope, sign_envelope
from openzoo.certify.keys import generate_key
from openzoo.certify.seal import seal_digest
from openzoo.facts.canonical import canonical_json
from openzoo.registry.oci.artifacts import (
    DSSE_MEDIA_TYPE,
    OCI_INDEX,
    OCI_MANIFEST,
    PROOF_TYPE,
    SEAL_ANNOTATION,
    SEAL_TYPE,
    Descriptor,
    artifact,
)
from openzoo.store import manifests as mt
from support.certified import CertifiedZoo, assert_nothing_stored, certified_zoo
from support.certified import trusting_zoo as zoo_b
from support.cli import openzoo
from support.oci_registry import Registry, get, oci_registry, put_blob, put_manifest  # noqa: F401  (the fixture)

MODEL = "tiny:v1"


def out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def zoo_a(tmp_path_factory: pytest.TempPathFactory) -> CertifiedZoo:
    return certified_zoo(tmp_path_factory.mktemp("zoo-a"))


@pytest.fixture(scope="module")
def pushed(zoo_a: CertifiedZoo, oci_registry: Registry) -> subprocess.CompletedProcess[str]:  # noqa: F811
    result = openzoo(zoo_a.home, "push", MODEL, f"oci://{oci_registry.host}/library/tiny:v1", timeout=300)
    assert result.returncode == 0, out(result)
    return result


# -- raw registry access (as an operator, or an attacker, would) -------------------------------------


def referrers(registry: Registry, repo: str, digest: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(registry, f"{repo}/manifests/sha256-{digest[7:]}", OCI_INDEX).json()["manifests"]
    return items


def copy_repo(registry: Registry, source: str, target: str, tag: str = "v1") -> tuple[dict[str, Any], str]:
    """Copy the model and its referrers into another repository (blob by blob, manifests byte for byte)."""
    raw = get(registry, f"{source}/manifests/{tag}").content
    manifest = json.loads(raw)
    for desc in [manifest["config"], *manifest["layers"]]:
        put_blob(registry, target, get(registry, f"{source}/blobs/{desc['digest']}", "*/*").content)
    digest = put_manifest(registry, target, tag, raw)
    index = get(registry, f"{source}/manifests/sha256-{digest[7:]}", OCI_INDEX).content
    for item in json.loads(index)["manifests"]:
        art_raw = get(registry, f"{source}/manifests/{item['digest']}").content
        art = json.loads(art_raw)
        for desc in [art["config"], *art["layers"]]:
            put_blob(registry, target, get(registry, f"{source}/blobs/{desc['digest']}", "*/*").content)
        put_manifest(registry, target, item["digest"], art_raw)
    put_manifest(registry, target, f"sha256-{digest[7:]}", index, OCI_INDEX)
    return manifest, digest


# -- the round trip --------------------------------------------------------------------------------------


def test_push_then_verified_pull_into_another_zoo(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                  pushed: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert "updating the referrers tag (the registry has no referrers API)" in pushed.stderr
    tags = get(oci_registry, "library/tiny/tags/list", "application/json").json()["tags"]
    model = get(oci_registry, "library/tiny/manifests/v1")
    digest = model.headers["docker-content-digest"]
    assert sorted(tags) == sorted(["v1", f"sha256-{digest[7:]}"])
    kinds = {item["artifactType"]: item for item in referrers(oci_registry, "library/tiny", digest)}
    assert set(kinds) == {mt.CARD, SEAL_TYPE, PROOF_TYPE}
    for item in kinds.values():
        art = get(oci_registry, f"library/tiny/manifests/{item['digest']}").json()
        assert art["subject"]["digest"] == digest and art["artifactType"] == item["artifactType"]
    assert not [x for x in model.json()["layers"] if x["mediaType"] == mt.SEAL]  # the seal is an artifact

    home_b = zoo_b(tmp_path, zoo_a)
    pull = openzoo(home_b, "pull", f"oci://{oci_registry.host}/library/tiny:v1")
    assert pull.returncode == 0, out(pull)
    assert "verified against zoo-a" in pull.stderr and "tagged as certified" in pull.stderr
    verify = openzoo(home_b, "verify", MODEL)
    assert verify.returncode == 0 and "certified by zoo-a" in verify.stdout, out(verify)
    listed_a, listed_b = openzoo(zoo_a.home, "list").stdout, openzoo(home_b, "list").stdout
    id_a = next(line.split()[1] for line in listed_a.splitlines() if line.startswith(MODEL))
    assert f"{oci_registry.host}/library/tiny:v1" in listed_b
    assert id_a in listed_b  # the very manifest zoo A holds, seal layer included
    weights = hashlib.sha256(zoo_a.weights_file.read_bytes()).hexdigest()
    assert (home_b / "blobs" / f"sha256-{weights}").read_bytes() == zoo_a.weights_file.read_bytes()

    again = openzoo(zoo_a.home, "push", MODEL, f"oci://{oci_registry.host}/library/tiny:v1")
    assert again.returncode == 0, out(again)
    assert len(referrers(oci_registry, "library/tiny", digest)) == 3  # a second push replaces, never piles up

    relay = openzoo(home_b, "push", MODEL, f"oci://{oci_registry.host}/relay/tiny:v1")  # B passes A's model on
    assert relay.returncode == 0, out(relay)
    home_c = zoo_b(tmp_path / "c", zoo_a)
    pull_c = openzoo(home_c, "pull", f"oci://{oci_registry.host}/relay/tiny:v1")
    assert pull_c.returncode == 0 and "verified against zoo-a" in pull_c.stderr, out(pull_c)


def test_oras_lists_and_fetches_what_openzoo_pushed(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                    pushed: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    client = oras.client.OrasClient(hostname=oci_registry.host, insecure=True)
    target = f"{oci_registry.host}/library/tiny"
    assert "v1" in client.get_tags(target)
    manifest = client.get_manifest(f"{target}:v1")
    assert manifest["mediaType"] == OCI_MANIFEST
    files = client.pull(target=f"{target}:v1", outdir=str(tmp_path / "oras"))
    assert len(files) == len(manifest["layers"])
    for path in files:  # oras names files by digest: each re-hashes to its name
        assert "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest() == Path(path).name
    weights = "sha256:" + hashlib.sha256(zoo_a.weights_file.read_bytes()).hexdigest()
    assert Path(tmp_path / "oras" / weights).read_bytes() == zoo_a.weights_file.read_bytes()
    digest = get(oci_registry, "library/tiny/manifests/v1").headers["docker-content-digest"]
    seal = next(x for x in referrers(oci_registry, "library/tiny", digest) if x["artifactType"] == SEAL_TYPE)
    seal_manifest = client.get_manifest(f"{target}@{seal['digest']}")
    envelope = next(x for x in seal_manifest["layers"] if x["mediaType"] == DSSE_MEDIA_TYPE)
    blob = client.get_blob(f"{target}:v1", envelope["digest"]).content
    assert json.loads(blob)["payloadType"] == "application/vnd.in-toto+json"


def test_openzoo_pulls_what_oras_pushed_only_insecurely(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(zoo_a.weights_file.parent)
    client = oras.client.OrasClient(hostname=oci_registry.host, insecure=True)
    resp = client.push(target=f"{oci_registry.host}/oras/tiny:v1", files=[f"{zoo_a.weights_file.name}:{mt.MODEL}"])
    assert resp.status_code == 201
    home_b = zoo_b(tmp_path, zoo_a)
    refused = openzoo(home_b, "pull", f"oci://{oci_registry.host}/oras/tiny:v1")
    assert refused.returncode == 1 and "no seal artifact" in refused.stderr and "--insecure" in refused.stderr
    assert_nothing_stored(home_b)
    kept = openzoo(home_b, "pull", "--insecure", f"oci://{oci_registry.host}/oras/tiny:v1")
    assert kept.returncode == 0 and "tagged as uncertified" in kept.stderr, out(kept)
    weights = hashlib.sha256(zoo_a.weights_file.read_bytes()).hexdigest()
    assert (home_b / "blobs" / f"sha256-{weights}").read_bytes() == zoo_a.weights_file.read_bytes()
    verify = openzoo(home_b, "verify", "oras/tiny:v1")
    assert verify.returncode == 1 and "uncertified" in verify.stdout, out(verify)


@pytest.mark.skipif(shutil.which("oras") is None, reason="the Go oras CLI is not installed (not packaged for Debian)")
def test_oras_cli_discovers_and_fetches_what_openzoo_pushed(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                           pushed: subprocess.CompletedProcess[str],
                                                           tmp_path: Path) -> None:
    target = f"{oci_registry.host}/library/tiny"

    def oras_cli(*args: str) -> str:
        result = subprocess.run(["oras", *args, "--plain-http"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "v1" in oras_cli("repo", "tags", target).split()
    discovered = oras_cli("discover", f"{target}:v1")  # a tree of artifact types; follows the sha256-<hex> tag
    for kind in (mt.CARD, SEAL_TYPE, PROOF_TYPE):
        assert kind in discovered
    weights = "sha256:" + hashlib.sha256(zoo_a.weights_file.read_bytes()).hexdigest()
    oras_cli("blob", "fetch", f"{target}@{weights}", "--output", str(tmp_path / "weights"))
    assert (tmp_path / "weights").read_bytes() == zoo_a.weights_file.read_bytes()


# -- tampering --------------------------------------------------------------------------------------------


def tamper_blob(registry: Registry, repo: str, manifest: dict[str, Any], digest: str) -> Iterator[None]:
    with registry.flipped(manifest["layers"][0]["digest"]):  # the weights, in the registry's storage
        yield


def tamper_manifest_on_disk(registry: Registry, repo: str, manifest: dict[str, Any], digest: str) -> Iterator[None]:
    path = registry.blob_file(digest)
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"size":', b'"size": ', 1))  # same JSON, other bytes
    try:
        yield
    finally:
        path.write_bytes(original)


def tamper_manifest_repushed(registry: Registry, repo: str, manifest: dict[str, Any], digest: str) -> Iterator[None]:
    """Swap the license layer for the card blob, push that under the tag and re-attach the real artifacts."""
    layers = manifest["layers"]
    path = "org.cncf.model.filepath"  # ModelPack, the default format
    license_at = next(i for i, x in enumerate(layers) if x.get("annotations", {}).get(path) == "LICENSE")
    card = next(x for x in layers if x.get("annotations", {}).get(path) == "README.md")
    changed = {**manifest, "layers": [*layers[:license_at], {**card, "annotations": layers[license_at]["annotations"]},
                                      *layers[license_at + 1:]]}
    new = put_manifest(registry, repo, "v1", canonical_json(changed))
    subject = Descriptor(OCI_MANIFEST, new, len(canonical_json(changed)))
    items = []
    for item in referrers(registry, repo, digest):
        art = json.loads(get(registry, f"{repo}/manifests/{item['digest']}").content)
        art["subject"] = subject.to_json()
        data = canonical_json(art)
        items.append({**item, "digest": put_manifest(registry, repo, "sha256:" + hashlib.sha256(data).hexdigest(),
                                                     data), "size": len(data)})
    put_manifest(registry, repo, f"sha256-{new[7:]}",
                 canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": items}), OCI_INDEX)
    yield


def tamper_seal(registry: Registry, repo: str, manifest: dict[str, Any], digest: str) -> Iterator[None]:
    """Replace the seal by one signed with a key nobody trusts (same statement), with a matching proof."""
    items = referrers(registry, repo, digest)
    seal_item = next(x for x in items if x["artifactType"] == SEAL_TYPE)
    seal_art = get(registry, f"{repo}/manifests/{seal_item['digest']}").json()
    bundle_desc = next(x for x in seal_art["layers"] if x["mediaType"] == mt.SEAL)
    bundle = json.loads(get(registry, f"{repo}/blobs/{bundle_desc['digest']}", "*/*").content)
    original = Envelope.from_json(bundle["envelope"])
    forged = sign_envelope(original.payload_type, original.payload, [generate_key("zoo")])
    bundle["envelope"] = forged.to_json()
    envelope_bytes, bundle_bytes = canonical_json(forged.to_json()), canonical_json(bundle)
    layers = [Descriptor(DSSE_MEDIA_TYPE, put_blob(registry, repo, envelope_bytes), len(envelope_bytes)),
              Descriptor(mt.SEAL, put_blob(registry, repo, bundle_bytes), len(bundle_bytes)),
              *(Descriptor(x["mediaType"], x["digest"], x["size"]) for x in seal_art["layers"]
                if x["mediaType"] not in (DSSE_MEDIA_TYPE, mt.SEAL))]  # the signed manifest and its extra blobs
    subject = Descriptor(OCI_MANIFEST, digest, int(seal_art["subject"]["size"]))
    which = {SEAL_ANNOTATION: seal_digest(forged)}
    proof_item = next(x for x in items if x["artifactType"] == PROOF_TYPE)
    proof_layer = get(registry, f"{repo}/manifests/{proof_item['digest']}").json()["layers"][0]
    proof = artifact(PROOF_TYPE, [Descriptor(PROOF_TYPE, proof_layer["digest"], proof_layer["size"])], subject, which)
    seal = artifact(SEAL_TYPE, layers, subject, {**seal_art.get("annotations", {}), **which})
    for art in (seal, proof):
        put_manifest(registry, repo, art.descriptor().digest, art.to_bytes())
    card = [x for x in items if x["artifactType"] == mt.CARD]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [*card, seal.descriptor().to_json(), proof.descriptor().to_json()]}
    put_manifest(registry, repo, f"sha256-{digest[7:]}", canonical_json(index), OCI_INDEX)
    yield


TAMPERS = {
    "blob": (tamper_blob, "does not match its digest"),
    "manifest on disk": (tamper_manifest_on_disk, "not to the sha256:"),
    "manifest re-pushed": (tamper_manifest_repushed, "is not carried by the registry as declared"),
    "seal": (tamper_seal, "seal signature"),
}


@pytest.mark.parametrize("what", list(TAMPERS))
def test_tampering_is_refused_and_nothing_is_stored(what: str, zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                    pushed: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    repo = "tampered/" + what.replace(" ", "-")
    manifest, digest = copy_repo(oci_registry, "library/tiny", repo)
    tamper, words = TAMPERS[what]
    home_b = zoo_b(tmp_path, zoo_a)
    for _ in tamper(oci_registry, repo, manifest, digest):
        pull = openzoo(home_b, "pull", f"oci://{oci_registry.host}/{repo}:v1")
        assert pull.returncode == 1, out(pull)
        assert words in pull.stderr and "refused" in pull.stderr, out(pull)
        assert_nothing_stored(home_b)


# -- bad input ---------------------------------------------------------------------------------------------


def raw_manifest(registry: Registry, repo: str, tag: str, layers: list[dict[str, Any]], *,
                 config_type: str = "application/vnd.oci.empty.v1+json") -> None:
    config = put_blob(registry, repo, b"{}")
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": config, "size": 2}, "layers": layers}
    put_manifest(registry, repo, tag, json.dumps(body).encode())


def test_bad_input_gets_a_clear_error_and_nothing_is_stored(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                            tmp_path: Path) -> None:
    host = oci_registry.host
    weights = zoo_a.weights_file.read_bytes()
    digest = put_blob(oci_registry, "bad/model", weights)
    size = len(weights)
    raw_manifest(oci_registry, "bad/model", "oversized", [{"mediaType": mt.MODEL, "digest": digest, "size": 1000}])
    raw_manifest(oci_registry, "bad/model", "short", [{"mediaType": mt.MODEL, "digest": digest, "size": size + 10}])
    raw_manifest(oci_registry, "bad/model", "negative", [{"mediaType": mt.MODEL, "digest": digest, "size": -1}])
    raw_manifest(oci_registry, "bad/model", "container",
                 [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}])
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    put_manifest(oci_registry, "bad/model", "index", json.dumps(index).encode(), OCI_INDEX)
    cases = [
        (["pull", "--insecure", f"oci://{host}/bad/model:oversized"], "bigger than the 1000 bytes"),
        (["pull", "--insecure", f"oci://{host}/bad/model:short"], f"is {size} bytes, not the {size + 10}"),
        (["pull", "--insecure", f"oci://{host}/bad/model:negative"], "is not a non-negative integer"),
        (["pull", "--insecure", f"oci://{host}/bad/model:container"], "container image"),
        (["pull", "--insecure", f"oci://{host}/bad/model:index"], "image index"),
        (["pull", f"oci://{host}/bad/model:missing"], "not found"),
        (["pull", f"oci://{host}/../../etc/passwd:v1"], "path traversal"),
        (["pull", f"oci://{host}/library/%2e%2e/x:v1"], "'%'"),
        (["pull", "--name", "../../evil:v1", f"oci://{host}/library/tiny:v1"], "invalid model name"),
        (["pull", f"oci://{host}/a/b/c:v1"], "--name"),
        (["push", MODEL, f"oci://{host}/library/../tiny:v1"], "path traversal"),
        (["push", MODEL, f"oci://{host}/library/tiny@sha256:{'0' * 64}"], "push to a tag"),
    ]
    home_b = zoo_b(tmp_path, zoo_a)
    for args, words in cases:
        result = openzoo(zoo_a.home if args[0] == "push" else home_b, *args)
        assert result.returncode == 1, (args, out(result))
        assert words in result.stderr, (args, out(result))
        assert_nothing_stored(home_b)
    assert list((home_b / "downloads").glob("*.partial")) == []
