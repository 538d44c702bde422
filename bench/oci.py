"""OCI push and pull throughput: openzoo in each format it writes (ModelPack, the default; Docker Model
Runner; Ollama; openzoo) vs oras-py (the ORAS project's Python client) on the same blobs, against one local
``docker-registry``, in one run.

Blobs: the default model (its 253 MB GGUF plus license and config). Each round pushes to fresh
repositories (so every byte travels) and pulls into fresh directories:

* ``openzoo push FMT``: chunked upload (``OPENZOO_OCI_CHUNK_BYTES``, 16 MiB), HEAD per blob, the format's
  manifest and config, referrers (the formats move the same blobs; only manifest and config differ);
* ``oras push``: oras-py's default single PUT per blob (the whole file read into memory), and its chunked
  upload (16 MiB);
* ``openzoo pull FMT``: resumable download into a partial file, fsync, re-hash, GGUF check, store, tag
  (``--insecure``: the default model has no seal; a foreign format's config and card are made from the GGUF);
* ``oras pull``: oras-py streams each layer to a file (no hash check).

Prints MB/s (1 MB = 10^6 bytes, best of the rounds) and the ratios openzoo / oras.

    .venv/bin/python bench/oci.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import oras.client  # noqa: E402

from openzoo import config  # noqa: E402
from openzoo.models import DEFAULT_MODEL  # noqa: E402
from openzoo.registry.oci.formats import WRITTEN  # noqa: E402
from openzoo.services import Services  # noqa: E402
from openzoo.store import manifests as mt  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.oci_registry import BINARY, start_registry, stop_registry  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def drain(events: Iterable[object]) -> None:
    for _ in events:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which(BINARY) is None:
        sys.exit(f"{BINARY} is not installed: apt-get install docker-registry")
    work = Path(tempfile.mkdtemp(prefix="openzoo-bench-oci-"))
    registry = start_registry(work / "registry")
    try:
        home = home_with_default_model(work / "home")
        services = Services(config.load({"OPENZOO_HOME": str(home)}))
        spec = services.models.resolve(DEFAULT_MODEL)
        assert spec.manifest is not None
        total = services.store.manifest_size(spec.manifest)
        weights = Path(spec.weights)
        weights_size = weights.stat().st_size
        client = oras.client.OrasClient(hostname=registry.host, insecure=True)
        os.chdir(weights.parent)  # oras-py pushes paths relative to the working directory
        times: dict[str, list[float]] = {}
        sizes = {"oras push": weights_size, "oras push (chunked)": weights_size, "oras pull": weights_size}
        sizes.update({f"openzoo {verb} {fmt}": total for fmt in WRITTEN for verb in ("push", "pull")})
        files = [f"{weights.name}:{mt.MODEL}"]
        for r in range(args.rounds):
            theirs = f"{registry.host}/bench/oras{r}:v1"
            runs: dict[str, Callable[[], object]] = {}
            for fmt in WRITTEN:
                ours = f"oci://{registry.host}/bench/{fmt}{r}:v1"
                runs[f"openzoo push {fmt}"] = lambda t=ours, f=fmt: drain(
                    services.transfers.push(DEFAULT_MODEL, t, format=f))
                runs[f"openzoo pull {fmt}"] = lambda t=ours, d=work / f"pull-{fmt}{r}": _pull(d, t)
            runs.update({
                "oras push": lambda t=theirs: client.push(target=t, files=files, quiet=True),
                "oras push (chunked)": lambda t=theirs: client.push(target=t.replace("oras", "orasc"), files=files,
                                                                    do_chunked=True, quiet=True),
                "oras pull": lambda t=theirs, d=work / f"pull-oras{r}": client.pull(target=t, outdir=str(d)),
            })
            for name, run in runs.items():
                times.setdefault(name, []).append(timed(run))
            for leftover in work.glob("pull-*"):
                shutil.rmtree(leftover)
        services.close()
    finally:
        stop_registry(registry)
        shutil.rmtree(work, ignore_errors=True)
    rate = {name: sizes[name] / min(values) / 1e6 for name, values in times.items()}
    print(f"blobs: default model, {total / 1e6:.1f} MB (GGUF {weights_size / 1e6:.1f} MB); "
          f"best of {args.rounds} rounds")
    for name, value in rate.items():
        print(f"  {name:<22}{value:8.1f} MB/s")
    for fmt in WRITTEN:
        print(f"{fmt:<10} push / oras: {rate[f'openzoo push {fmt}'] / rate['oras push']:.2f}x, "
              f"/ oras chunked: {rate[f'openzoo push {fmt}'] / rate['oras push (chunked)']:.2f}x; "
              f"pull / oras: {rate[f'openzoo pull {fmt}'] / rate['oras pull']:.2f}x")


def _pull(home: Path, reference: str) -> None:
    """A pull into a fresh zoo, through the same service as ``openzoo pull`` (default settings)."""
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        drain(services.transfers.pull(reference, insecure=True))
    finally:
        services.close()


if __name__ == "__main__":
    main()
