"""Multiple-choice scoring speed: openzoo's in-process engine vs lm-eval's ``local-completions`` over
HTTP against a live openzoo, on the same items, in one run. Also reports the largest per-item
log-likelihood difference between the two (they must agree within 1e-4).

    .venv/bin/python bench/loglik.py [--items 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from openzoo import config  # noqa: E402
from openzoo.audit import datasets  # noqa: E402
from openzoo.audit.engine_scorer import EngineScorer  # noqa: E402
from openzoo.audit.suites.quality import TASK, load_mc  # noqa: E402
from openzoo.models import DEFAULT_MODEL  # noqa: E402
from openzoo.services import Services  # noqa: E402
from support.server import start_server, stop_server  # noqa: E402

CTX = 2048
TASK_YAML = """task: oz_bench_mc
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
metadata: {{version: 1.0}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20, help="multiple-choice questions")
    args = parser.parse_args()
    items = load_mc(datasets.bundled(TASK))[: args.items]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        services = Services(config.load({"OPENZOO_HOME": str(home), "OPENZOO_CONTEXT_LENGTH": str(CTX)}))
        for _ in services.transfers.pull(DEFAULT_MODEL):
            pass
        requests = [(item.context, " " + choice) for item in items for choice in item.choices]
        scorer = EngineScorer.open(services.inference, DEFAULT_MODEL, context_bos=False)
        scorer.loglikelihood(requests[:2])  # warm-up
        started = time.perf_counter()
        ours = scorer.loglikelihood(requests)
        t_in = time.perf_counter() - started
        services.close()

        data = work / "mc.jsonl"
        data.write_text("".join(json.dumps({"context": i.context, "choices": list(i.choices), "gold": i.gold}) + "\n"
                                for i in items))
        tasks = work / "tasks"
        tasks.mkdir()
        (tasks / "oz_bench_mc.yaml").write_text(TASK_YAML.format(data=data))
        server = start_server(home, work / "server.log", {"OPENZOO_CONTEXT_LENGTH": str(CTX)})
        try:
            model_args = (f"model={DEFAULT_MODEL},base_url={server.url}/v1/completions,tokenizer_backend=remote,"
                          f"tokenized_requests=True,max_length={CTX + 1},num_concurrent=4,max_retries=1")
            env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args",
                            model_args, "--include_path", str(tasks), "--tasks", "oz_bench_mc", "--batch_size", "1",
                            "--log_samples", "--output_path", str(work / "out")],
                           env=env, cwd=work, check=True, capture_output=True, timeout=1800)
            t_lm = time.perf_counter() - started
        finally:
            stop_server(server)
        (path,) = (work / "out").rglob("samples_oz_bench_mc_*.jsonl")
        rows = sorted((json.loads(line) for line in path.read_text().splitlines() if line.strip()),
                      key=lambda r: r["doc_id"])
        theirs = [float(resp[0][0]) for row in rows for resp in row["resps"]]
    n = len(requests)
    diff = max(abs(a[0] - b) for a, b in zip(ours, theirs, strict=True))
    print(f"{len(items)} questions, {n} scored (context, choice) items, {DEFAULT_MODEL}")
    print(f"in-process engine           : {n / t_in:7.2f} items/s ({t_in:.1f} s)")
    print(f"lm-eval local-completions   : {n / t_lm:7.2f} items/s ({t_lm:.1f} s, process start included)")
    print(f"ratio in-process / lm-eval  : {t_lm / t_in:.2f}x")
    print(f"max |difference| per item   : {diff:.2e} (must be <= 1e-4)")


if __name__ == "__main__":
    main()
