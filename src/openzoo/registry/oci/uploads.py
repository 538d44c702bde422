"""Chunked, resumable blob uploads (the OCI chunked flow: ``POST``, ``PATCH`` with ``Content-Range``,
``PUT ?digest=``).

After every chunk the registry's answer — the next ``Location`` and how many bytes it holds — is written
to ``OPENZOO_HOME/oci/uploads/<key>.json`` (atomically) before anything else happens, and the transfer's
pacing pause comes after that write. A killed push therefore finds, on its next run, a session to ask
about: ``GET <location>`` answers with the registry's ``Range``, and the upload continues from the byte
the *registry* reports (never from a local guess). A registry that has dropped the session — it expired,
or, like distribution 2.8, it cancels a session whose last chunk was cut off mid-way — gets a fresh one,
and the push says so. The ``PUT`` names the digest, so the registry re-hashes what it received. A blob
of one chunk or less (config, card, seal, proof) travels in that ``PUT``: two requests, nothing to resume.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from openzoo.errors import StoreCorrupt, TransferFailed
from openzoo.events import Progress
from openzoo.registry.oci.client import OciClient, RangeNotSatisfiable, UploadGone
from openzoo.registry.transfer import Throttle

__all__ = ["UploadState", "upload_blob"]

MAX_RECOVERIES = 5


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where one blob's upload to one registry repository stands, kept across processes."""

    path: Path

    @classmethod
    def for_blob(cls, home: Path, registry: str, repository: str, digest: str) -> UploadState:
        key = hashlib.sha256(f"{registry}|{repository}|{digest}".encode()).hexdigest()[:40]
        return cls(Path(home) / "oci" / "uploads" / f"{key}.json")

    def load(self, digest: str, size: int) -> tuple[str, int] | None:
        """(location, offset) of an earlier session for this very blob, or None."""
        try:
            data = json.loads(self.path.read_text())
            if data["digest"] == digest and int(data["size"]) == size:
                return str(data["location"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def save(self, digest: str, size: int, location: str, offset: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"digest": digest, "size": size, "location": location, "offset": offset}))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def upload_blob(client: OciClient, state: UploadState, digest: str, size: int, opener: Callable[[], BinaryIO],
                *, chunk_bytes: int, throttle: Throttle) -> Iterator[Progress]:
    """Make ``digest`` (``size`` bytes, read from ``opener()``) present in the client's repository."""
    short = digest[7:19]
    status = f"pushing {short}"
    if client.blob_exists(digest):
        state.clear()
        yield Progress(status, digest=digest, total=size, completed=size)
        return
    location, offset = None, 0
    saved = state.load(digest, size)
    if saved is not None:
        try:
            location, offset = client.upload_status(saved[0])
            yield Progress(f"resuming upload of {short} at {offset} of {size} bytes", digest=digest)
        except UploadGone:
            yield Progress(f"the registry dropped the interrupted upload of {short}; starting it again",
                           digest=digest)
            location, offset = None, 0
    if location is None:
        location = client.start_upload()
        if size <= chunk_bytes:  # one chunk or less: send it with the closing PUT, nothing to resume
            with opener() as f:
                data = f.read(size + 1)
            if len(data) != size:
                raise StoreCorrupt(f"blob {digest} is {len(data)} bytes, not {size}",
                                   hint="run 'openzoo verify --store' and pull or import the model again")
            try:
                client.finish_upload(location, digest, data)
            except UploadGone as exc:
                raise TransferFailed(f"the registry at {client.base} dropped the upload of {short}…: {exc}") from exc
            throttle.moved(size)
            yield Progress(status, digest=digest, total=size, completed=size)
            return
        state.save(digest, size, location, 0)
    yield Progress(status, digest=digest, total=size, completed=offset)
    recoveries = 0
    with opener() as f:
        while True:
            try:
                location, offset = yield from _send_chunks(client, state, f, digest, size, location, offset,
                                                           chunk_bytes, throttle)
                client.finish_upload(location, digest)
                break
            except (RangeNotSatisfiable, UploadGone, TransferFailed) as exc:
                recoveries += 1
                if recoveries > MAX_RECOVERIES:
                    raise TransferFailed(f"the upload of {short}… to {client.base} keeps failing at {offset} of "
                                         f"{size} bytes: {exc}") from exc
                try:
                    location, offset = client.upload_status(location)
                except UploadGone:
                    location, offset = client.start_upload(), 0
                state.save(digest, size, location, offset)
                yield Progress(f"resuming upload of {short} at {offset} of {size} bytes", digest=digest)
    state.clear()
    yield Progress(status, digest=digest, total=size, completed=size)


def _send_chunks(client: OciClient, state: UploadState, f: BinaryIO, digest: str, size: int, location: str,
                 offset: int, chunk_bytes: int, throttle: Throttle) -> Generator[Progress, None, tuple[str, int]]:
    """PATCH the rest of the blob from ``offset``; returns the final (location, offset)."""
    f.seek(offset)
    while offset < size:
        chunk = f.read(min(chunk_bytes, size - offset))
        if not chunk:
            raise StoreCorrupt(f"blob {digest} is shorter than its {size} bytes",
                               hint="run 'openzoo verify --store' and pull or import the model again")
        location, held = client.patch(location, chunk, offset)
        if held != offset + len(chunk):
            raise RangeNotSatisfiable(f"the registry holds {held} bytes after a chunk ending at {offset + len(chunk)}")
        offset = held
        state.save(digest, size, location, offset)
        yield Progress(f"pushing {digest[7:19]}", digest=digest, total=size, completed=offset)
        throttle.moved(len(chunk))
    return location, offset
