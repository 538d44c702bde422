"""LoRA training on CPU with peft: the plain loop, with checkpoints, resume and progress.

The loop is deliberately the textbook one (tokenize, pad, forward, backward, AdamW step) so that its
speed matches a hand-written peft loop; openzoo adds only progress events, checkpoints every N steps
(written atomically: a temp folder renamed into place) and a clean stop on Ctrl-C, which saves a
checkpoint and re-raises so that no model is stored from a half-finished run.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openzoo.errors import InvalidRequest
from openzoo.events import Progress

if TYPE_CHECKING:
    import torch

__all__ = ["LoraSettings", "TrainResult", "Trainer", "load_lora_state", "lora_state"]

SUPPORTED_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """LoRA and optimizer hyperparameters (defaults: the classic peft recipe)."""

    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    dropout: float = 0.05
    lr: float = 2e-4
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    max_length: int = 256
    seed: int = 0
    checkpoint_every: int = 20
    weight_decay: float = 0.0

    def check(self) -> None:
        """Reject settings that cannot train, before anything is loaded."""
        if self.rank < 1:
            raise InvalidRequest(f"LoRA rank must be at least 1 (got {self.rank})", param="rank",
                                 hint="use --rank 8 or --rank 16")
        if self.alpha <= 0:
            raise InvalidRequest("LoRA alpha must be positive", param="alpha")
        if not 0 <= self.dropout < 1:
            raise InvalidRequest("dropout must be in [0, 1)", param="dropout")
        if not self.lr > 0:
            raise InvalidRequest("learning rate must be positive", param="lr")
        if self.epochs < 1:
            raise InvalidRequest("epochs must be at least 1", param="epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidRequest("max steps must be at least 1", param="max_steps")
        if self.batch_size < 1 or self.max_length < 8 or self.checkpoint_every < 1:
            raise InvalidRequest("batch size, max length and checkpoint interval must be positive")
        unknown = [t for t in self.targets if t not in SUPPORTED_TARGETS]
        if unknown or not self.targets:
            raise InvalidRequest(f"unknown LoRA target(s) {', '.join(unknown) or '(none)'}: use some of "
                                 f"{', '.join(SUPPORTED_TARGETS)}", param="targets")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = list(self.targets)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoraSettings:
        data = dict(data)
        data["targets"] = tuple(data.get("targets") or ())
        return cls(**data)


@dataclass(slots=True)
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    train_seconds: float = 0.0
    first_step_seconds: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def batches(token_lists: Sequence[list[int]], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Record indices of each batch for one epoch, shuffled by ``(seed, epoch)``."""
    order = list(range(len(token_lists)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(token_lists: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (padding ignored with -100)."""
    import torch

    width = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, :len(tokens)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """BOS + text + EOS per record, cut at ``max_length`` tokens."""
    eos = tokenizer.eos_token_id
    out = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        if eos is not None:
            ids.append(int(eos))
        out.append(ids[:max_length])
    return out


def lora_state(model: Any) -> dict[str, torch.Tensor]:
    """The LoRA tensors only (what is checkpointed, averaged across nodes and exported)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def load_lora_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    missing = [k for k in state if k not in model.state_dict()]
    if missing:
        raise InvalidRequest(f"checkpoint does not fit this model ({missing[0]})")
    model.load_state_dict(state, strict=False)


class Trainer:
    """One LoRA run over tokenized records; owns the peft model and the optimizer."""

    def __init__(self, base_model: Any, tokenizer: Any, settings: LoraSettings) -> None:
        import torch
        from peft import LoraConfig, get_peft_model

        settings.check()
        self.settings = settings
        self.tokenizer = tokenizer
        torch.manual_seed(settings.seed)
        config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.targets),
                            lora_dropout=settings.dropout, task_type="CAUSAL_LM", bias="none")
        self.model = get_peft_model(base_model, config)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id or 0)
        self.step = 0
        self.losses: list[float] = []
        self.last_result = TrainResult(0)

    def trainable_parameters(self) -> tuple[int, int]:
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        return trainable, total

    def total_steps(self, n_records: int) -> int:
        per_epoch = math.ceil(n_records / self.settings.batch_size)
        total = per_epoch * self.settings.epochs
        return min(total, self.settings.max_steps) if self.settings.max_steps else total

    # checkpoints

    def save_checkpoint(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``folder`` atomically: LoRA tensors, optimizer, step, losses and RNG state."""
        import torch

        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save({"lora": lora_state(self.model), "optimizer": self.optimizer.state_dict(),
                    "rng": torch.get_rng_state()}, tmp / "state.pt")
        meta = {"step": self.step, "losses": self.losses, "settings": self.settings.to_json(), **(extra or {})}
        (tmp / "checkpoint.json").write_text(json.dumps(meta))
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, folder: Path) -> dict[str, Any]:
        import torch

        meta: dict[str, Any] = json.loads((folder / "checkpoint.json").read_text())
        state = torch.load(folder / "state.pt", weights_only=False)
        load_lora_state(self.model, state["lora"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.step = int(meta["step"])
        self.losses = [float(x) for x in meta["losses"]]
        return meta

    # training

    def train(self, token_lists: Sequence[list[int]], *, checkpoint: Path | None = None,
              checkpoint_extra: dict[str, Any] | None = None,
              should_stop: Callable[[], bool] | None = None) -> Iterator[Progress]:
        """Train from ``self.step`` to the end; yields a progress event per step.

        On ``KeyboardInterrupt`` (or ``should_stop``) a checkpoint is written before stopping.
        """
        total = self.total_steps(len(token_lists))
        result = TrainResult(self.step)
        self.model.train()
        per_epoch = math.ceil(len(token_lists) / self.settings.batch_size)
        started = time.perf_counter()
        try:
            while self.step < total:
                epoch, index = divmod(self.step, per_epoch)
                batch_ids = batches(token_lists, self.settings.batch_size, self.settings.seed, epoch)[index]
                ids, mask, labels = collate([token_lists[i] for i in batch_ids], self.pad_id)
                t0 = time.perf_counter()
                out = self.model(input_ids=ids, attention_mask=mask, labels=labels)
                out.loss.backward()
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                if result.first_step_seconds is None:
                    result.first_step_seconds = time.perf_counter() - started
                self.step += 1
                loss = float(out.loss.detach())
                self.losses.append(round(loss, 5))
                tokens = int(mask.sum())
                result.tokens += tokens
                result.train_seconds += dt
                if checkpoint is not None and self.step % self.settings.checkpoint_every == 0 and self.step < total:
                    self.save_checkpoint(checkpoint, checkpoint_extra)
                yield Progress("training", total=total, completed=self.step,
                               detail={"step": self.step, "epoch": epoch + 1, "loss": round(loss, 4),
                                       "tokens_per_second": round(tokens / dt, 1) if dt > 0 else 0.0})
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if checkpoint is not None:
                self.save_checkpoint(checkpoint, checkpoint_extra)
            raise
        finally:
            self.last_result = result
        self.model.eval()
