"""kill -9 an import at random points; after a restart the store must be consistent and clean."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from openzoo import names
from openzoo.errors import ModelNotFound
from openzoo.schema import open_store
from support.gguf_files import write_gguf


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "big.gguf"
    tensors = {f"blk.{i}.weight": np.full((1024, 1024), i, dtype=np.float32) for i in range(24)}
    return write_gguf(path, tensors=tensors)  # about 100 MB: the copy takes long enough to hit


def test_kill_during_import_leaves_consistent_store(big_gguf: Path, tmp_path: Path) -> None:
    rng = random.Random(1234)
    home = tmp_path / "home"
    env = {**os.environ, "OPENZOO_HOME": str(home)}
    outcomes = set()
    for attempt in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "openzoo", "import", str(big_gguf), "--name", f"crash:{attempt}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = open_store(home)  # "the next start"
        store.recover(grace_seconds=0)
        assert list(store.blobs.root.glob("*.partial")) == []
        assert store.catalog.integrity_check() == []
        try:
            stored = store.resolve(names.parse(f"crash:{attempt}"))
        except ModelNotFound:
            outcomes.add("absent")
        else:
            outcomes.add("present")
            for digest in stored.manifest.blob_digests():
                assert store.blobs.hash_file(digest) == digest
        assert all(check.ok for check in store.verify())
        # every blob on disk is referenced by the catalog: nothing orphaned after recovery
        assert set(store.blobs.digests()) == store.catalog.referenced_blobs()
        store.close()
    assert outcomes  # each attempt ended in one of the two consistent states
