"""The Flower ServerApp and ClientApp of a federated LoRA fine-tune (loaded by Flower's own processes).

Flower's deployment engine runs these in ``flwr-serverapp`` / ``flwr-clientapp`` processes that it
spawns itself; openzoo writes a tiny app bundle (:func:`openzoo.finetune.federated.write_app`) whose
components point here. Only LoRA tensors travel: the server sends the current adapter, each data
owner trains it for a few steps on its own JSONL and sends the adapter back with the number of
records and the digest of its data (never the data); FedAvg averages the adapters.

With ``dp-noise`` > 0 the FedAvg is wrapped in Flower's ``DifferentialPrivacyServerSideFixedClipping``
(central DP: each node's update is clipped to ``dp-clip`` on the server, then Gaussian noise of standard
deviation ``dp-noise * dp-clip / nodes`` is added to the average). :class:`RecordingDP` records, per
round, that this happened and the digest of the adapter *after* the noise, which is what the next
round starts from and what the fine-tuned model gets.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

__all__ = ["RecordingDP", "RecordingFedAvg", "adapter_digest", "client_app", "server_app"]

server_app = ServerApp()
client_app = ClientApp()


def adapter_digest(state: dict[str, Any]) -> str:
    """``sha256:`` over the LoRA tensors in key order (names and float32 bytes)."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        array = value.detach().cpu().float().numpy() if hasattr(value, "detach") else value
        h.update(key.encode() + b"\0" + array.astype("float32").tobytes())
    return "sha256:" + h.hexdigest()


class RecordingFedAvg(FedAvg):  # type: ignore[misc]
    """FedAvg that writes each round's participants, data digests and aggregated adapter digest."""

    def __init__(self, out: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out = out
        self.rounds: list[dict[str, Any]] = []

    def aggregate_train(self, server_round: int, replies: Any) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        nodes = []
        for msg in replies:
            if msg.has_error():
                continue
            info = msg.content.config_records.get("info", ConfigRecord())
            m = msg.content.metric_records.get("metrics", MetricRecord())
            nodes.append({"node_id": str(msg.metadata.src_node_id), "data_digest": str(info.get("data-digest", "")),
                          "records": int(m.get("num-examples", 0)), "loss": round(float(m.get("loss", 0.0)), 5)})
        entry: dict[str, Any] = {"round": server_round, "nodes": nodes,
                                 "loss": round(float(metrics["loss"]), 5) if metrics and "loss" in metrics else None}
        if arrays is not None:
            entry["adapter_digest"] = adapter_digest(arrays.to_torch_state_dict())
        self.rounds.append(entry)
        self.save()
        return arrays, metrics

    def save(self) -> None:
        tmp = self.out / "rounds.json.tmp"
        tmp.write_text(json.dumps(self.rounds))
        tmp.replace(self.out / "rounds.json")


class RecordingDP(DifferentialPrivacyServerSideFixedClipping):  # type: ignore[misc]
    """Flower's server-side fixed-clipping DP around a :class:`RecordingFedAvg`, noting what it added."""

    def __init__(self, recorder: RecordingFedAvg, *, noise_multiplier: float, clipping_norm: float,
                 num_sampled_clients: int) -> None:
        super().__init__(recorder, noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
                         num_sampled_clients=num_sampled_clients)
        self.recorder = recorder

    def aggregate_train(self, server_round: int, replies: Any) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super().aggregate_train(server_round, replies)
        entry = self.recorder.rounds[-1] if self.recorder.rounds else None
        if entry is not None and entry["round"] == server_round and arrays is not None:
            entry["dp"] = {"clipping_norm": self.clipping_norm, "noise_multiplier": self.noise_multiplier,
                           "noise_stddev": self.noise_multiplier * self.clipping_norm / self.num_sampled_clients,
                           "clipped_updates": len(entry["nodes"]),
                           "averaged_adapter_digest": entry.get("adapter_digest")}
            entry["adapter_digest"] = adapter_digest(arrays.to_torch_state_dict())  # after the noise
            self.recorder.save()
        return arrays, metrics


@server_app.main()  # type: ignore[untyped-decorator]
def server_main(grid: Grid, context: Context) -> None:
    import torch

    cfg = context.run_config
    out = Path(str(cfg["out-dir"]))
    nodes = int(cfg["nodes"])
    init = torch.load(out / "init.pt", weights_only=True)
    recorder = RecordingFedAvg(out, fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
                               min_available_nodes=nodes)
    strategy: Any = recorder
    noise = float(cfg.get("dp-noise", 0.0))
    if noise > 0:
        strategy = RecordingDP(recorder, noise_multiplier=noise, clipping_norm=float(cfg["dp-clip"]),
                               num_sampled_clients=nodes)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(torch_state_dict=init),
                            num_rounds=int(cfg["rounds"]), timeout=float(cfg.get("timeout", 3600)))
    torch.save(result.arrays.to_torch_state_dict(), out / "final.pt")


@client_app.train()  # type: ignore[untyped-decorator]
def client_train(msg: Message, context: Context) -> Message:
    from openzoo import config
    from openzoo.finetune import dequant
    from openzoo.finetune.lora import LoraSettings, Trainer, load_lora_state, lora_state, tokenize
    from openzoo.finetune.run import load_data, load_hf
    from openzoo.models import Models
    from openzoo.store.store import Store

    cfg, node = context.run_config, context.node_config
    server_round = int(msg.content["config"].get("server-round", 1))
    home = str(node.get("home") or cfg["home"])
    settings_home = config.load({"OPENZOO_HOME": home})
    store = Store(settings_home.home, settings_home.catalog)  # the node's own view of the home, as Services builds it
    store.recover()
    try:
        models = Models(store)
        spec = models.resolve(str(cfg["base"]))
        data = load_data(models, spec, Path(str(node["data"])))
        settings_json = json.loads(str(cfg["settings"]))
        settings_json["max_steps"] = int(cfg["local-steps"])
        settings_json["seed"] = int(settings_json.get("seed", 0)) + 1000 * server_round + int(node.get("index", 0))
        settings = LoraSettings.from_json(settings_json)
        with dequant.dequantized(store, spec, dequant.DequantCache.from_config(settings_home)) as hf:
            model, tokenizer = load_hf(hf.folder)
            trainer = Trainer(model, tokenizer, settings)
            load_lora_state(trainer.model, msg.content["arrays"].to_torch_state_dict())
            records = tokenize(tokenizer, data.texts, settings.max_length)
            for _ in trainer.train(records):
                pass
            state = lora_state(trainer.model)
    finally:
        store.close()
    losses = trainer.losses or [0.0]
    content = RecordDict({"arrays": ArrayRecord(torch_state_dict=state),
                          "metrics": MetricRecord({"num-examples": len(records), "loss": sum(losses) / len(losses)}),
                          "info": ConfigRecord({"data-digest": data.digest})})
    return Message(content, reply_to=msg)
