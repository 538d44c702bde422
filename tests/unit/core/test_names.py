from __future__ import annotations

import pytest

from openzoo import names
from openzoo.errors import InvalidName


@pytest.mark.parametrize(("text", "display", "key"), [
    ("gemma3", "gemma3:latest", "openzoo.local/library/gemma3:latest"),
    ("gemma3:270m", "gemma3:270m", "openzoo.local/library/gemma3:270m"),
    ("me/model:v1.2", "me/model:v1.2", "openzoo.local/me/model:v1.2"),
    ("127.0.0.1:8080/library/gemma3:270m", "127.0.0.1:8080/library/gemma3:270m",
     "127.0.0.1:8080/library/gemma3:270m"),
    ("Upper/Case:TAG", "upper/case:tag", "openzoo.local/upper/case:tag"),
])
def test_parse(text: str, display: str, key: str) -> None:
    name = names.parse(text)
    assert name.display == display
    assert name.key == key


def test_port_is_not_a_tag() -> None:
    name = names.parse("localhost:5000/ns/m")
    assert (name.host, name.tag) == ("localhost:5000", "latest")


def test_digest_suffix() -> None:
    name = names.parse("m:t@sha256-" + "a" * 64)
    assert name.digest == "sha256:" + "a" * 64


@pytest.mark.parametrize("bad", ["", "../x", "a//b", "x" * 300, "/abs", "a/", "m:", "a/b/c/d", "..",
                                 "ns/..", "m:..", "-x", "a b", "m@sha256:zz"])
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidName):
        names.parse(bad)


def test_digest_helpers() -> None:
    assert names.is_digest("sha256:" + "0" * 64)
    assert names.normalize_digest("sha256-" + "f" * 64) == "sha256:" + "f" * 64
    assert not names.is_digest("sha256:" + "0" * 63)
