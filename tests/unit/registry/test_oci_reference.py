"""The ``oci://`` reference grammar: what is accepted, what is refused (and why), and the local name."""

from __future__ import annotations

import pytest

from openzoo.errors import InvalidName
from openzoo.registry.oci.reference import OciReference, is_oci, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("oci://127.0.0.1:5000/library/tiny:v1", OciReference("127.0.0.1:5000", "library/tiny", "v1", None)),
    ("oci://localhost/tiny", OciReference("localhost", "tiny", "latest", None)),
    ("oci://Registry.Example.com/a/b/c:V1.0_rc-1", OciReference("registry.example.com", "a/b/c", "V1.0_rc-1", None)),
    (f"oci://ghcr.io/org/model@{DIGEST}", OciReference("ghcr.io", "org/model", None, DIGEST)),
    (f"oci://ghcr.io/org/model:v2@{DIGEST}", OciReference("ghcr.io", "org/model", "v2", DIGEST)),
    ("oci://[::1]:5000/m.x__y--z/n:t", OciReference("[::1]:5000", "m.x__y--z/n", "t", None)),
    ("  OCI://h:1/a:b  ", OciReference("h:1", "a", "b", None)),
])
def test_valid_references(text: str, expected: OciReference) -> None:
    assert parse_reference(text) == expected


def test_reference_is_what_the_manifest_endpoint_takes() -> None:
    assert parse_reference("oci://h/a:v1").reference == "v1"
    assert parse_reference(f"oci://h/a:v1@{DIGEST}").reference == DIGEST
    assert parse_reference("oci://h:5/a/b:t").display == "oci://h:5/a/b:t"
    assert parse_reference("oci://h/a", default_tag=None).tag is None


@pytest.mark.parametrize(("text", "words"), [
    ("127.0.0.1:5000/library/tiny:v1", "must start with oci://"),
    ("oci://host", "no repository"),
    ("oci://host/", "no repository"),
    ("oci://host/../etc:v1", "path traversal"),
    ("oci://host/a/../b", "path traversal"),
    ("oci://host/a/./b", "path traversal"),
    ("oci://host/a//b", "path traversal"),
    ("oci://host/a/%2e%2e/b", "'%'"),
    ("oci://host/a\\b", "'\\'"),
    ("oci://host/a b", "spaces"),
    ("oci://host/a?x=1", "'?'"),
    ("oci://host/Upper", "not a valid repository component"),
    ("oci://host/-a", "not a valid repository component"),
    ("oci://host/a:.tag", "not a valid tag"),
    ("oci://host/a:" + "t" * 129, "not a valid tag"),
    ("oci://host/a@sha512:" + "ab" * 64, "sha256"),
    ("oci://host/a@sha256:ABC", "sha256"),
    ("oci://host:99999/a", "out of range"),
    ("oci://-host/a", "not a valid registry host"),
    ("oci://user@host/a", "not a valid registry host"),
    ("oci://h/" + "a/" * 150 + "b", "longer than"),
])
def test_invalid_references_say_why(text: str, words: str) -> None:
    with pytest.raises(InvalidName) as info:
        parse_reference(text)
    assert words in info.value.message
    assert "oci://HOST[:PORT]/REPOSITORY" in info.value.hint


def test_is_oci() -> None:
    assert is_oci("oci://h/a") and is_oci(" OCI://h/a")
    assert not is_oci("h:1/ns/model:tag") and not is_oci("gemma3:270m")


def test_local_names() -> None:
    assert parse_reference("oci://127.0.0.1:5000/library/tiny:v1").local_name().key == \
        "127.0.0.1:5000/library/tiny:v1"
    assert parse_reference("oci://h:1/tiny:v1").local_name().key == "h:1/library/tiny:v1"
    by_digest = parse_reference(f"oci://h:1/ns/tiny@{DIGEST}").local_name()
    assert (by_digest.namespace, by_digest.model, by_digest.tag) == ("ns", "tiny", "sha256-" + "ab" * 6)


@pytest.mark.parametrize("text", ["oci://h/a/b/c:v1", "oci://[::1]:5000/a/b:v1", "oci://h/a/b:" + "t" * 100])
def test_references_without_an_openzoo_name_need_one(text: str) -> None:
    with pytest.raises(InvalidName) as info:
        parse_reference(text).local_name()
    assert "--name" in info.value.hint
