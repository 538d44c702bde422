"""OpenSSF model-signing bundles: verify one the real tool made, and round-trip our own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from openzoo.certify.keys import SigningKey, load_public_pem
from openzoo.certify.modelsig import (
    BUNDLE_MEDIA_TYPE,
    hash_model_dir,
    sign_model_dir,
    verify_bundle,
    verify_model_dir,
)
from openzoo.errors import InvalidRequest, VerificationFailed

DATA = Path(__file__).parent / "data" / "modelsig"


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    target = tmp_path / "mymodel"
    shutil.copytree(DATA / "mymodel", target)
    (target / ".gitattributes").write_text("x")
    return target


def test_verifies_bundle_from_model_signing_1_1_1(model: Path) -> None:
    pub = load_public_pem((DATA / "key.pub").read_bytes(), "upstream")
    bundle = (DATA / "model-signing-1.1.1.sig").read_text()
    signed = verify_model_dir(model, bundle, pub)
    assert signed.model_name == "mymodel"
    assert sorted(signed.files) == ["model.gguf", "sub/config.json"]
    (model / "sub" / "config.json").write_bytes(b"tampered")
    with pytest.raises(VerificationFailed, match=r"sub/config\.json: digest differs"):
        verify_model_dir(model, bundle, pub)


def test_roundtrip_and_tampering(model: Path, zoo_key: SigningKey, reviewer_keys: dict[str, SigningKey]) -> None:
    bundle = sign_model_dir(model, zoo_key)
    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    (model / "model.sig").write_text(json.dumps(bundle))  # ignored when re-hashing
    assert verify_model_dir(model, json.dumps(bundle), zoo_key.public).files == hash_model_dir(model, ["model.sig"])
    with pytest.raises(VerificationFailed, match="different key"):
        verify_bundle(bundle, reviewer_keys["alice"].public)
    (model / "extra.bin").write_bytes(b"1")
    with pytest.raises(VerificationFailed, match=r"extra\.bin: extra file"):
        verify_model_dir(model, bundle, zoo_key.public)
    assert verify_model_dir(model, bundle, zoo_key.public, ignore_unsigned=True)
    (model / "model.gguf").unlink()
    with pytest.raises(VerificationFailed, match=r"model\.gguf: missing"):
        verify_model_dir(model, bundle, zoo_key.public, ignore_unsigned=True)
    forged = json.loads(json.dumps(bundle))
    forged["dsseEnvelope"]["payload"] = forged["dsseEnvelope"]["payload"][:-8] + "AAAAAAA="
    with pytest.raises(VerificationFailed):
        verify_bundle(forged, zoo_key.public)
    with pytest.raises(VerificationFailed, match="malformed"):
        verify_bundle({"mediaType": BUNDLE_MEDIA_TYPE}, zoo_key.public)


def test_symlinks_are_refused(model: Path, zoo_key: SigningKey) -> None:
    (model / "link").symlink_to("/etc/passwd")
    with pytest.raises(InvalidRequest, match="symlink"):
        sign_model_dir(model, zoo_key)


def test_model_signing_package_verifies_ours(model: Path, zoo_key: SigningKey, tmp_path: Path) -> None:
    ms = pytest.importorskip("model_signing")
    (model / "model.sig").write_text(json.dumps(sign_model_dir(model, zoo_key)))
    (tmp_path / "zoo.pub").write_bytes(zoo_key.public.pem())
    ms.verifying.Config().use_elliptic_key_verifier(public_key=tmp_path / "zoo.pub").verify(model, model / "model.sig")
