"""Federated LoRA fine-tuning with Flower: a SuperLink, one SuperNode per data owner, FedAvg rounds.

``openzoo finetune BASE --federated --nodes N`` splits the data file into N shards (one per simulated
data owner, each written to its own file), starts a SuperLink and N SuperNodes on 127.0.0.1 (Flower
1.42's deployment engine: separate processes talking HTTP, insecure loopback transport), submits the
app of :mod:`openzoo.finetune.flower_app` with ``flwr run``, and follows the rounds. Only LoRA tensors
travel. The final adapter becomes a model like any fine-tune; the lineage records every round: the
participating nodes, their data digests (not the data) and the aggregated adapter digest.

``openzoo federate link`` / ``openzoo federate node`` run the same daemons for real multi-machine use.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from openzoo.domain import Domain
from openzoo.errors import EngineError, InvalidRequest
from openzoo.events import Progress
from openzoo.finetune import dequant
from openzoo.finetune.data import shard
from openzoo.finetune.evaluate import heldout_loss
from openzoo.finetune.lora import LoraSettings, Trainer, lora_state
from openzoo.finetune.run import FinetuneRequest, load_data, load_hf, prepare, store_result

__all__ = ["FederatedRequest", "check_dp", "default_local_steps", "federated_lr", "finetune_federated", "run_link",
           "run_node", "write_app"]


@dataclass(frozen=True, slots=True)
class FederatedRequest:
    base: str
    data: Path
    name: str
    settings: LoraSettings = field(default_factory=LoraSettings)
    eval_data: Path | None = None
    nodes: int = 3
    rounds: int = 3
    local_steps: int | None = None
    data_license: str | None = None
    dp_noise: float | None = None
    dp_clip: float = 1.0
    timeout: float = 1800.0
    shard_files: tuple[Path, ...] = ()
    eval_shard_files: tuple[Path, ...] = ()


def default_local_steps(shard_records: Sequence[int], settings: LoraSettings, rounds: int) -> int:
    """Local training steps per round so that, over all rounds, each data owner goes through its own data
    ``settings.epochs`` times: as often as the centralized default (one pass, ``--epochs 1``) sees each
    record. (A fixed handful of steps left most of a large owner's data unseen.)"""
    largest = max(shard_records, default=1)
    return max(1, math.ceil(settings.epochs * math.ceil(largest / settings.batch_size) / max(1, rounds)))


def federated_lr(lr: float, nodes: int) -> float:
    """The default learning rate of a federated run: the centralized default times the number of nodes.

    FedAvg averages the nodes' updates, so a round moves the adapter about as far as *one* node's local
    steps would; N owners each going once through their 1/N of the data thus make about 1/N of the
    centralized run's progress at the same rate. AdamW's step is proportional to the learning rate, so N
    times the rate restores it (bench/finetune.py measures both runs' held-out loss).
    """
    return lr * max(1, nodes)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _env(flwr_home: Path) -> dict[str, str]:
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "FLWR_HOME": str(flwr_home), "PATH": path}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(f"{what} exited with status {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise EngineError(f"{what} did not start listening on port {port} within {timeout:.0f}s")


def write_app(folder: Path, config: dict[str, Any]) -> Path:
    """A Flower app bundle whose components are openzoo's ServerApp and ClientApp."""
    folder.mkdir(parents=True, exist_ok=True)
    package = folder / "openzoo_fl"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    # Flower checks statically (AST) that the module assigns ``app``; an ``import ... as app`` does not count.
    (package / "server_app.py").write_text("from openzoo.finetune.flower_app import server_app\n\napp = server_app\n")
    (package / "client_app.py").write_text("from openzoo.finetune.flower_app import client_app\n\napp = client_app\n")
    lines = ["[project]", 'name = "openzoo-fl"', 'version = "1.0.0"', 'description = "openzoo federated LoRA"',
             'license = "Apache-2.0"', 'dependencies = ["openzoo"]', "", "[tool.flwr.app]", 'publisher = "openzoo"',
             "", "[tool.flwr.app.components]", 'serverapp = "openzoo_fl.server_app:app"',
             'clientapp = "openzoo_fl.client_app:app"', "", "[tool.flwr.app.config]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


class LocalFederation:
    """A SuperLink and N SuperNodes on 127.0.0.1, stopped (nodes first) on exit."""

    def __init__(self, work: Path, node_configs: list[dict[str, Any]]) -> None:
        self.work = work
        self.flwr_home = work / "flwr-home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "loop"\n\n[superlink.loop]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n')
        self.node_configs = node_configs
        self.link: subprocess.Popen[bytes] | None = None
        self.nodes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def _start(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = (self.work / log).open("wb")
        self._logs.append(out)
        return subprocess.Popen(args, env=_env(self.flwr_home), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.work)

    def __enter__(self) -> LocalFederation:
        try:
            self.link = self._start([_bin("flower-superlink"), "--insecure", "--port", str(self.port),
                                     "--disable-runtime-dependency-installation"], "superlink.log")
            _wait_port(self.port, self.link, 60, "the Flower SuperLink")
            for i, cfg in enumerate(self.node_configs):
                toml = self.work / f"node-{i}.toml"
                toml.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items()))
                port = free_port()
                self.nodes.append(self._start([_bin("flower-supernode"), "--insecure", "--superlink",
                                               f"127.0.0.1:{self.port}", "--port", str(port), "--node-config",
                                               str(toml)], f"supernode-{i}.log"))
            self.wait_nodes(len(self.node_configs), 90)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def flwr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([_bin("flwr"), *args], env=_env(self.flwr_home), capture_output=True, text=True,
                              timeout=timeout, cwd=self.work)

    def wait_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            res = self.flwr("supernode", "list", "loop", "--format", "json")
            try:
                nodes = json.loads(res.stdout).get("nodes", [])
                seen = sum(1 for n in nodes if str(n.get("status", "online")).lower() in ("online", "registered"))
                seen = seen or len(nodes)
            except ValueError:
                seen = 0
            if seen >= count:
                return
            time.sleep(1.0)
        raise EngineError(f"only {seen} of {count} Flower SuperNodes connected within {timeout:.0f}s")

    def run_status(self) -> str:
        res = self.flwr("ls", "loop", "--format", "json")
        try:
            runs = json.loads(res.stdout).get("runs", [])
        except ValueError:
            return ""
        return str(runs[-1].get("status", "")) if runs else ""

    def __exit__(self, *exc: object) -> None:
        for proc in [*self.nodes, *([self.link] if self.link else [])]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.nodes, *([self.link] if self.link else [])]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in self._logs:
            log.close()


def check_dp(noise: float | None, clip: float) -> None:
    """Refuse differential-privacy settings Flower would reject mid-run, or that would give no privacy."""
    if noise is not None and not (math.isfinite(noise) and noise > 0):
        raise InvalidRequest(f"the DP noise multiplier must be a positive number (got {noise})", param="dp_noise",
                             hint="use e.g. --dp-noise 0.1, or leave it out for no differential privacy")
    if not (math.isfinite(clip) and clip > 0):
        raise InvalidRequest(f"the DP clipping norm must be a positive number (got {clip})", param="dp_clip",
                             hint="use e.g. --dp-clip 1.0")


def finetune_federated(services: Domain, req: FederatedRequest,
                       should_stop: Callable[[], bool] | None = None) -> Iterator[Progress]:
    """Federated LoRA over ``req.nodes`` local data owners; yields progress, ends with the lineage."""
    import torch

    started = time.time()
    n_nodes = len(req.shard_files) or req.nodes
    if n_nodes < 2:
        raise InvalidRequest("federated fine-tuning needs at least 2 nodes", param="nodes")
    if req.rounds < 1:
        raise InvalidRequest("federated fine-tuning needs at least 1 round", param="rounds")
    check_dp(req.dp_noise, req.dp_clip)
    spec, data, eval_data = prepare(services, FinetuneRequest(base=req.base, data=req.data, name=req.name,
                                                               settings=req.settings, eval_data=req.eval_data))
    if req.shard_files:  # each data owner's own file
        parts = [load_data(services.models, spec, path) for path in req.shard_files]
    else:
        if len(data.texts) < n_nodes:
            raise InvalidRequest(f"{len(data.texts)} records cannot be split among {n_nodes} nodes")
        parts = [shard(data, i, n_nodes) for i in range(n_nodes)]
    if eval_data is None:
        eval_parts = []
    elif req.eval_shard_files:
        eval_parts = [load_data(services.models, spec, path).texts for path in req.eval_shard_files]
    else:
        eval_parts = [eval_data.texts[i::n_nodes] for i in range(n_nodes)]
    local_steps = req.local_steps or req.settings.max_steps or default_local_steps(
        [len(part.texts) for part in parts], req.settings, req.rounds)
    before = heldout_loss(services.inference, req.base, eval_data.texts) if eval_data else None
    before_shards = [heldout_loss(services.inference, req.base, texts) for texts in eval_parts]
    with tempfile.TemporaryDirectory(prefix="openzoo-fed-") as tmp:
        work = Path(tmp)
        shards = []
        for i, part in enumerate(parts):
            path = work / f"shard-{i}.jsonl"
            path.write_text("".join(json.dumps({"text": t}) + "\n" for t in part.texts))
            shards.append(path)
        yield Progress(f"{sum(len(p.texts) for p in parts)} records held by {n_nodes} data owners")
        with dequant.dequantized(services.store, spec, dequant.DequantCache.from_config(services.config)) as hf:
            yield dequant.progress_for(hf)
            model, tokenizer = load_hf(hf.folder)
            init = lora_state(Trainer(model, tokenizer, req.settings).model)
            del model
        out = work / "out"
        out.mkdir()
        torch.save(init, out / "init.pt")
        app = write_app(work / "app", {
            "base": spec.name.display, "home": str(services.config.home),
            "settings": json.dumps(req.settings.to_json()),
            "local-steps": local_steps, "rounds": req.rounds, "nodes": n_nodes, "out-dir": str(out),
            "dp-noise": float(req.dp_noise or 0.0), "dp-clip": float(req.dp_clip), "timeout": float(req.timeout)})
        nodes = [{"data": str(p), "home": str(services.config.home), "index": i} for i, p in enumerate(shards)]
        yield Progress(f"starting a Flower SuperLink and {n_nodes} SuperNodes on 127.0.0.1")
        with LocalFederation(work, nodes) as fed:
            yield Progress(f"{n_nodes} SuperNodes connected; running {req.rounds} FedAvg rounds")
            runner = subprocess.Popen([_bin("flwr"), "run", str(app), "loop", "--stream"], env=_env(fed.flwr_home),
                                      stdout=(work / "run.log").open("wb"), stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd=work)
            seen = 0
            deadline = time.monotonic() + req.timeout
            try:
                while runner.poll() is None:
                    if time.monotonic() > deadline:
                        raise EngineError("the federated run timed out")
                    if should_stop is not None and should_stop():
                        raise KeyboardInterrupt
                    rounds = json.loads((out / "rounds.json").read_text()) if (out / "rounds.json").exists() else []
                    for entry in rounds[seen:]:
                        yield Progress("federated round", total=req.rounds, completed=entry["round"],
                                       detail={"step": entry["round"], "loss": entry.get("loss") or 0.0,
                                               "nodes": len(entry["nodes"])})
                    seen = len(rounds)
                    time.sleep(1.0)
            finally:
                if runner.poll() is None:
                    runner.terminate()
                    runner.wait(10)
            status = fed.run_status()
        if not (out / "final.pt").exists() or (status and status != "finished:completed"):
            log = (work / "run.log").read_text(errors="replace")[-2000:]
            raise EngineError(f"the federated run failed ({status or 'no status'}): {log}")
        final = torch.load(out / "final.pt", weights_only=True)
        rounds = json.loads((out / "rounds.json").read_text())
    for entry in rounds[seen:]:
        yield Progress("federated round", total=req.rounds, completed=entry["round"],
                       detail={"step": entry["round"], "loss": entry.get("loss") or 0.0, "nodes": len(entry["nodes"])})
    federated = {"engine": "flwr", "strategy": "FedAvg (LoRA tensors only)", "nodes": n_nodes,
                 "rounds": rounds, "local_steps": local_steps,
                 "differential_privacy": ({
                     "mechanism": "central DP, server-side fixed clipping (Flower "
                                  "DifferentialPrivacyServerSideFixedClipping)",
                     "noise_multiplier": req.dp_noise, "clipping_norm": req.dp_clip,
                     "noise_stddev": req.dp_noise * req.dp_clip / n_nodes} if req.dp_noise else None)}
    if before_shards:
        federated["eval_shards_before"] = [r.to_json() for r in before_shards]
    lineage = yield from store_result(
        services, spec, req.name, final, req.settings,
        data=[{**part.to_json(), "file": part.path.name if req.shard_files else f"{data.path.name}#shard{i}",
               "license": req.data_license, "owner": f"node {i}"} for i, part in enumerate(parts)],
        eval_data=eval_data, before=before, losses=[r.get("loss") or 0.0 for r in rounds], started=started,
        train={"federated": True}, federated=federated,
        after_tagging=lambda: {"eval_shards_after": [heldout_loss(services.inference, req.name, texts).to_json()
                                                     for texts in eval_parts]})
    yield Progress("success", detail={"lineage": lineage})


def run_link(host: str, port: int) -> int:
    """``openzoo federate link``: a SuperLink in the foreground (Ctrl-C stops it)."""
    args = [_bin("flower-superlink"), "--insecure", "--port", str(port), "--disable-runtime-dependency-installation"]
    if host not in ("127.0.0.1", "localhost"):
        args[1:1] = ["--fleet-api-address", f"{host}:{port}"]
    return subprocess.call(args, env={**os.environ, "PATH": _env(Path(os.environ.get("FLWR_HOME", "~/.flwr")))["PATH"]})


def run_node(data: Path, link: str, port: int) -> int:
    """``openzoo federate node``: a SuperNode that trains on ``data`` (validated first) when asked."""
    from openzoo import config as configuration
    from openzoo.finetune.data import load_jsonl

    load_jsonl(data.resolve(), lambda messages: "")
    home = configuration.load().home
    with tempfile.TemporaryDirectory(prefix="openzoo-node-") as tmp:
        toml = Path(tmp) / "node.toml"
        toml.write_text(f"data = {json.dumps(str(data.resolve()))}\nhome = {json.dumps(str(home))}\nindex = 0\n")
        args = [_bin("flower-supernode"), "--insecure", "--superlink", link, "--port", str(port),
                "--node-config", str(toml)]
        return subprocess.call(args, env={**os.environ, "PATH": _env(Path(tmp))["PATH"]})
