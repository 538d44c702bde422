"""Moving blobs over HTTP, shared by the zoo-to-zoo client and the OCI client: the resumable download
and the pacing of a transfer.

Why one download for both: a blob is a blob whether another zoo or an OCI registry serves it, and the
guarantees are the same — bytes land in ``downloads/sha256-<hex>.partial`` (so a killed pull continues
with an HTTP ``Range`` request), the whole file is re-hashed before it is moved into the store, and a
server that sends more than the manifest declared is cut off rather than allowed to fill the disk.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import httpx

from openzoo import names
from openzoo.errors import DigestMismatch, TransferFailed
from openzoo.events import Progress
from openzoo.store.store import Store

__all__ = ["CHUNK", "Throttle", "download_blob", "partial_path"]

CHUNK = 1 << 20


class Throttle:
    """Paces a transfer to ``rate`` bytes per second on average (0: no limit).

    The pause comes *after* each chunk, between requests: a process stopped while it waits has already
    recorded the chunk it sent, which is what makes a killed upload resumable at a chunk boundary.
    """

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = max(0, rate)
        self._clock, self._sleep = clock, sleep
        self._start = clock()
        self._moved = 0

    def moved(self, size: int) -> None:
        """Account ``size`` bytes and sleep as long as the average rate is above the limit."""
        if not self.rate:
            return
        self._moved += size
        ahead = self._moved / self.rate - (self._clock() - self._start)
        if ahead > 0:
            self._sleep(ahead)


def partial_path(store: Store, digest: str) -> Path:
    """Where a download of ``digest`` keeps its bytes until they are complete and checked."""
    folder = Path(store.home) / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"sha256-{names.normalize_digest(digest)[7:]}.partial"


def _hash_prefix(part: Path) -> hashlib._Hash:
    hasher = hashlib.sha256()
    with part.open("rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher


def download_blob(store: Store, http: httpx.Client, url: str, digest: str, size: int, *, source: str,
                  raise_for: Callable[[httpx.Response], None], throttle: Throttle | None = None,
                  ) -> Iterator[Progress]:
    """Download one blob of a declared ``size`` (resuming a partial file), check its digest, move it in place.

    ``source`` names the server in messages; ``raise_for`` turns an error response into the caller's
    error. More bytes than declared, or a complete answer of another length, is :class:`DigestMismatch`
    (nothing kept); a connection that breaks off is :class:`TransferFailed` (the partial file stays).
    """
    expected = names.normalize_digest(digest)
    short = expected[7:19]
    part = partial_path(store, expected)
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        part.unlink()
        offset = 0
    hasher = _hash_prefix(part) if offset else hashlib.sha256()
    status = f"pulling {short}"
    if offset:
        yield Progress(f"resuming {short} at {offset} of {size} bytes", digest=expected)
    yield Progress(status, digest=expected, total=size, completed=offset)
    completed = offset
    if offset < size:
        completed, hasher = yield from _fetch(http, url, part, hasher, offset, size, expected, source, raise_for,
                                              throttle)
    actual = "sha256:" + hasher.hexdigest()
    if actual != expected or completed != size:
        part.unlink(missing_ok=True)
        why = (f"is {completed} bytes, not the {size} its manifest declares" if completed != size else
               f"does not match its digest (it hashes to {actual[7:19]}…)")
        raise DigestMismatch(f"blob {short}… from {source} {why}: refused, nothing stored",
                             hint="the registry's copy is damaged or was tampered with; do not use it")
    os.replace(part, store.blobs.path(expected))
    yield Progress(status, digest=expected, total=size, completed=size)


def _fetch(http: httpx.Client, url: str, part: Path, hasher: hashlib._Hash, offset: int, size: int,
           digest: str, source: str, raise_for: Callable[[httpx.Response], None],
           throttle: Throttle | None) -> Generator[Progress, None, tuple[int, hashlib._Hash]]:
    """Stream the rest of a blob into ``part``; returns how many bytes the file holds and their hash."""
    short = digest[7:19]
    status = f"pulling {short}"
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    completed, last = offset, 0.0
    try:
        with http.stream("GET", url, headers=headers) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise_for(resp)
            start, mode = offset, "ab"
            if offset and resp.status_code != 206:  # the server ignored the range: start again
                hasher, completed, start, mode = hashlib.sha256(), 0, 0, "wb"
            with part.open(mode) as f:
                for chunk in resp.iter_bytes():  # as the socket delivers: re-chunking would copy every byte
                    if completed + len(chunk) > size:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise DigestMismatch(f"blob {short}… from {source} is bigger than the {size} bytes its "
                                             "manifest declares: refused, nothing stored",
                                             hint="the registry's copy is damaged or was tampered with")
                    f.write(chunk)
                    f.flush()
                    hasher.update(chunk)
                    completed += len(chunk)
                    if throttle is not None:
                        throttle.moved(len(chunk))
                    now = time.monotonic()
                    if now - last > 0.1:
                        last = now
                        yield Progress(status, digest=digest, total=size, completed=completed)
                os.fsync(f.fileno())
            announced = resp.headers.get("content-length")
    except httpx.HTTPError as exc:
        raise TransferFailed(f"the transfer of {short}… from {source} broke off at {completed} of {size} bytes: "
                             f"{exc}") from exc
    whole_answer = announced is not None and announced.isdigit() and completed - start == int(announced)
    if completed < size and not whole_answer:
        raise TransferFailed(f"the transfer of {short}… from {source} stopped at {completed} of {size} bytes")
    return completed, hasher
