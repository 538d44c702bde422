"""Content-addressed blob files: ``blobs/sha256-<hex>``.

A blob is streamed through sha256 into a temp file in the same directory, fsynced, renamed onto its
final name and the directory fsynced; so a file under a blob name always holds exactly the bytes its
name promises, and a crash leaves at most a ``.partial`` temp file, removed at the next start.

Temp files are named ``.tmp-<pid>-<n>@<host>.partial``: servers on several hosts may share one blob
directory (one ``OPENZOO_HOME`` on shared storage, see ``docs/deployment.md``), and a start-up sweep
must only judge the process ids of its own host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from openzoo.errors import BlobNotFound, DigestMismatch, StoreCorrupt
from openzoo.names import normalize_digest
from openzoo.store.owners import host_name, pid_alive

CHUNK = 1 << 20
PARTIAL_SUFFIX = ".partial"
#: A temp file of another host is only removed once it is this old (its writer cannot be asked).
FOREIGN_PARTIAL_SECONDS = 24 * 3600.0

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Blobs under ``root``; every write is atomic, every name is its content's sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """The file of a blob (``sha256:<hex>`` or ``sha256-<hex>``), whether or not it exists."""
        return self.root / ("sha256-" + normalize_digest(digest)[7:])

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(f"blob {digest} not found") from exc

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(f"blob {digest} not found") from exc

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def put_bytes(self, data: bytes) -> BlobInfo:
        return self.put([data])

    def put_file(self, path: Path, *, expected: str | None = None,
                 progress: ProgressCallback | None = None) -> BlobInfo:
        with path.open("rb") as f:
            return self.put(_chunks(f), expected=expected, progress=progress)

    def put(self, chunks: Iterable[bytes], *, expected: str | None = None,
            progress: ProgressCallback | None = None) -> BlobInfo:
        """Store a stream of bytes; with ``expected``, refuse content whose digest differs."""
        with self.writer() as writer:
            for chunk in chunks:
                writer.write(chunk)
                if progress is not None and chunk:
                    progress(len(chunk))
            return writer.commit(expected)

    def writer(self) -> BlobWriter:
        """A writer for callers that report progress between chunks (see :meth:`put`)."""
        return BlobWriter(self)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[str]:
        """Every stored blob's digest (temp files excluded)."""
        for entry in self.root.iterdir():
            if entry.name.startswith("sha256-") and entry.is_file():
                yield "sha256:" + entry.name[7:]

    def remove_partials(self) -> list[Path]:
        """Remove temp files left by crashed writers (those whose process is gone).

        A temp file of another host (named by it) is left to that host's own sweep, unless it is a
        day old.
        """
        removed = []
        here, now = host_name(), time.time()
        for entry in self.root.glob(f".tmp-*{PARTIAL_SUFFIX}"):
            stem, _, host = entry.name[: -len(PARTIAL_SUFFIX)].partition("@")
            try:
                pid = int(stem.split("-")[1])
            except (IndexError, ValueError):
                pid = -1
            try:
                if host and host != here and now - entry.stat().st_mtime < FOREIGN_PARTIAL_SECONDS:
                    continue
            except FileNotFoundError:
                continue
            if host in ("", here) and (pid == os.getpid() or pid_alive(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
        return removed

    def hash_file(self, digest: str, *, progress: ProgressCallback | None = None) -> str:
        """Re-hash a stored blob and return the digest its content has now."""
        hasher = hashlib.sha256()
        with self.open(digest) as f:
            for chunk in _chunks(f):
                hasher.update(chunk)
                if progress is not None:
                    progress(len(chunk))
        return "sha256:" + hasher.hexdigest()

    def check(self, digest: str) -> None:
        """Raise :class:`StoreCorrupt` when a blob's content no longer matches its name."""
        actual = self.hash_file(digest)
        if actual != normalize_digest(digest):
            raise StoreCorrupt(f"blob {digest} is damaged: its content hashes to {actual}")


class BlobWriter:
    """One atomic blob write: temp file in the blob directory, hashed as written, renamed on commit.

    The temp file name carries this process's id so that start-up clean-up never removes the temp
    file of an import still running in another process. Leaving the ``with`` block without
    :meth:`commit` removes the temp file: nothing partial is ever visible.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._tmp = store.root / f".tmp-{os.getpid()}-{time.monotonic_ns()}@{host_name()}{PARTIAL_SUFFIX}"
        self._file: BinaryIO | None = None
        self._hasher = hashlib.sha256()
        self.size = 0

    def __enter__(self) -> BlobWriter:
        self._file = self._tmp.open("wb")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "use BlobWriter in a with block"
        self._hasher.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self, expected: str | None = None) -> BlobInfo:
        assert self._file is not None, "use BlobWriter in a with block"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self._hasher.hexdigest()
        if expected is not None and digest != normalize_digest(expected):
            raise DigestMismatch(f'digest mismatch, expected "{normalize_digest(expected)}", got "{digest}"')
        final = self._store.path(digest)
        if final.is_file() and final.stat().st_size == self.size:
            self._tmp.unlink()
        else:
            os.replace(self._tmp, final)
            _fsync_dir(self._store.root)
        return BlobInfo(digest, self.size)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk
