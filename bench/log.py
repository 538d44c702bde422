"""Benchmark the transparency log: appends per second and proof size/time at 10k, 100k and 1M entries.

Run: ``PYTHONPATH=src python bench/log.py [--sizes 10000,100000,1000000] [--batch 1000]``

The goal (issue 4) is ≥ 10k appends/s and proofs that grow with log n. Appends are measured in batches
(one transaction per ``--batch`` entries, the path the zoo uses for bulk imports) and, separately, one
transaction per entry. Proof times are the mean over random indexes, including the SQLite reads.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from openzoo.certify import merkle
from openzoo.certify.keys import generate_key
from openzoo.certify.log import TransparencyLog, entry_bytes


def _body(i: int) -> dict[str, object]:
    return {"model": f"library/model-{i}:latest", "manifest_digest": f"sha256:{i:064x}", "reviewer": "alice"}


def bench_single(directory: Path, count: int) -> float:
    """Appends per second with one transaction per entry."""
    log = TransparencyLog(directory / "single.db")
    start = time.perf_counter()
    for i in range(count):
        log.append("approval", _body(i))
    return count / (time.perf_counter() - start)


def grow(log: TransparencyLog, target: int, batch: int) -> float:
    """Append up to ``target`` entries in batches and return appends per second."""
    start_size, start = log.size(), time.perf_counter()
    for first in range(start_size, target, batch):
        log.append_many([("approval", _body(i)) for i in range(first, min(first + batch, target))])
    elapsed = time.perf_counter() - start
    return (target - start_size) / elapsed if elapsed else float("inf")


def bench_proofs(log: TransparencyLog, size: int, samples: int) -> tuple[float, int, float, int, float]:
    """Mean inclusion time (ms) and hashes, consistency time (ms) and hashes, verification time (ms)."""
    rng = random.Random(size)
    incl_t, incl_n, cons_t, cons_n, ver_t = [], [], [], [], []
    root = log.root(size)
    for _ in range(samples):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        path = log.inclusion_proof(index, size)
        incl_t.append(time.perf_counter() - t0)
        incl_n.append(len(path))
        entry = log.entry(index)
        leaf = merkle.leaf_hash(entry_bytes(entry.kind, entry.body, entry.timestamp))
        t0 = time.perf_counter()
        assert merkle.verify_inclusion(index, size, leaf, path, root)
        ver_t.append(time.perf_counter() - t0)
        old = rng.randrange(1, size)
        t0 = time.perf_counter()
        proof = log.consistency_proof(old, size)
        cons_t.append(time.perf_counter() - t0)
        cons_n.append(len(proof))
        assert merkle.verify_consistency(old, size, log.root(old), root, proof)
    ms = 1000.0
    return (
        statistics.mean(incl_t) * ms,
        max(incl_n),
        statistics.mean(cons_t) * ms,
        max(cons_n),
        statistics.mean(ver_t) * ms,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--single", type=int, default=5000, help="entries for the one-per-transaction run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    key = generate_key("zoo")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        single = bench_single(directory, args.single)
        print(f"single appends (1 transaction each, WAL, synchronous=NORMAL): {single:,.0f}/s")
        log = TransparencyLog(directory / "log.db")
        print(f"batched appends: {args.batch} per transaction")
        header = (
            "entries",
            "appends/s",
            "incl. ms",
            "incl. hashes",
            "incl. bytes",
            "cons. ms",
            "cons. hashes",
            "verify ms",
            "sign head ms",
            "verify_log s",
            "db MiB",
        )
        print(" | ".join(header))
        print(" | ".join("-" * len(h) for h in header))
        for size in sizes:
            rate = grow(log, size, args.batch)
            t0 = time.perf_counter()
            log.sign_head(key)
            sign_ms = (time.perf_counter() - t0) * 1000
            incl_ms, incl_n, cons_ms, cons_n, ver_ms = bench_proofs(log, size, args.samples)
            t0 = time.perf_counter()
            report = log.verify_log([key.public])
            verify_s = time.perf_counter() - t0
            assert report.ok, report.problems
            db_mib = sum(p.stat().st_size for p in directory.glob("log.db*")) / 2**20
            row = (
                f"{size:,}",
                f"{rate:,.0f}",
                f"{incl_ms:.3f}",
                str(incl_n),
                str(incl_n * 32),
                f"{cons_ms:.3f}",
                str(cons_n),
                f"{ver_ms:.3f}",
                f"{sign_ms:.2f}",
                f"{verify_s:.2f}",
                f"{db_mib:.0f}",
            )
            print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
