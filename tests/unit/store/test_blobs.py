from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from openzoo.errors import BlobNotFound, DigestMismatch
from openzoo.store.blobs import FOREIGN_PARTIAL_SECONDS, BlobStore
from openzoo.store.owners import host_name


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_put_names_blob_by_content(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    info = blobs.put([b"hello ", b"world"])
    assert info.digest == digest_of(b"hello world")
    assert info.size == 11
    assert blobs.path(info.digest).name == "sha256-" + info.digest[7:]
    assert blobs.read(info.digest) == b"hello world"
    assert list(blobs.digests()) == [info.digest]


def test_put_is_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    first = blobs.put_bytes(b"x" * 100)
    second = blobs.put_bytes(b"x" * 100)
    assert first == second
    assert len(list(tmp_path.iterdir())) == 1


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    wrong = digest_of(b"something else")
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        blobs.put([b"data"], expected=wrong)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_stream_leaves_no_temp_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)

    def chunks():  # type: ignore[no-untyped-def]
        yield b"part"
        raise OSError("disk unplugged")

    with pytest.raises(OSError):
        blobs.put(chunks())
    assert list(tmp_path.iterdir()) == []


def test_remove_partials_only_of_dead_processes(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    here = host_name()
    dead = tmp_path / ".tmp-999999999-1.partial"  # the name before temp files carried their host
    dead_here = tmp_path / f".tmp-999999999-2@{here}.partial"
    live_here = tmp_path / f".tmp-{os.getppid()}-3@{here}.partial"
    elsewhere = tmp_path / ".tmp-999999999-4@another-host.partial"  # its pid means nothing here
    old_elsewhere = tmp_path / ".tmp-999999999-5@another-host.partial"
    for path in (dead, dead_here, live_here, elsewhere, old_elsewhere):
        path.write_bytes(b"half")
    day_ago = time.time() - FOREIGN_PARTIAL_SECONDS - 60
    os.utime(old_elsewhere, (day_ago, day_ago))
    assert sorted(blobs.remove_partials()) == sorted([dead, dead_here, old_elsewhere])
    assert live_here.exists() and elsewhere.exists()


def test_temp_files_name_their_host(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with blobs.writer() as writer:
        writer.write(b"in flight")
        [partial] = tmp_path.glob("*.partial")
        assert partial.name.endswith(f"@{host_name()}.partial")
        assert blobs.remove_partials() == []  # this process's own
        writer.commit()


def test_check_detects_damage(tmp_path: Path) -> None:
    from openzoo.errors import StoreCorrupt

    blobs = BlobStore(tmp_path)
    info = blobs.put_bytes(b"precious")
    blobs.check(info.digest)
    blobs.path(info.digest).write_bytes(b"precioux")
    with pytest.raises(StoreCorrupt, match="damaged"):
        blobs.check(info.digest)


def test_missing_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(BlobNotFound):
        blobs.open(digest_of(b"nope"))
