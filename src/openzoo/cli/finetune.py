"""``openzoo finetune`` and ``openzoo federate link|node``: LoRA fine-tuning from the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from openzoo import events
from openzoo.cli.common import local_services
from openzoo.cli.output import err_console
from openzoo.errors import InvalidRequest, NotSupported


def _require_extra() -> None:
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise NotSupported(f"fine-tuning needs the finetune extra ({exc.name} is missing)",
                           hint="pip install 'openzoo[finetune]'") from exc


def render_training(stream: Iterable[events.Progress]) -> None:
    """Status lines, and for training steps a bar with loss and tokens/s (a line per step without a TTY)."""
    tty = sys.stderr.isatty()
    bar: Progress | None = None
    task = None
    try:
        for event in stream:
            if event.status == "training" and event.total:
                d = event.detail
                text = f"loss {d.get('loss', 0):.4f}  {d.get('tokens_per_second', 0):.0f} tok/s"
                if not tty:
                    print(f"step {event.completed}/{event.total}  {text}", file=sys.stderr, flush=True)
                    continue
                if bar is None:
                    bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                   TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=err_console)
                    bar.start()
                    task = bar.add_task("training", total=event.total, stats=text)
                assert task is not None
                bar.update(task, completed=event.completed or 0, stats=text)
                continue
            if bar is not None:
                bar.stop()
                bar = None
            print(event.status, file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.stop()


@click.command()
@click.argument("base")
@click.option("--data", "data", required=True,
              help="Training data: a stored dataset's name, or a data file (JSONL, CSV, Parquet) of "
                   "{\"text\"} or {\"messages\"} records, stored as a dataset when the run succeeds.")
@click.option("--name", required=True, help="Name of the new model.")
@click.option("--eval", "eval_data", default=None,
              help="Held-out data (a dataset's name or a file) scored before and after, through openzoo's engine.")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--lr", default=None, type=float,
              help="Learning rate [default: 2e-4; with --federated, 2e-4 times --nodes].")
@click.option("--rank", default=16, show_default=True, type=int, help="LoRA rank r.")
@click.option("--alpha", default=32.0, show_default=True, type=float, help="LoRA alpha.")
@click.option("--targets", default="q_proj,v_proj", show_default=True, help="Modules to adapt.")
@click.option("--dropout", default=0.05, show_default=True, type=float, help="LoRA dropout.")
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--max-length", default=256, show_default=True, type=int, help="Tokens per record at most.")
@click.option("--max-steps", default=None, type=int, help="Stop after this many steps.")
@click.option("--checkpoint-every", default=20, show_default=True, type=int, help="Checkpoint interval (steps).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--data-license", default=None, help="License of the training data (SPDX id), for the lineage.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--federated", is_flag=True, help="Train across local data owners with Flower (FedAvg).")
@click.option("--nodes", default=3, show_default=True, type=int, help="Data owners for --federated.")
@click.option("--rounds", default=3, show_default=True, type=int, help="FedAvg rounds for --federated.")
@click.option("--dp-noise", default=None, type=float, help="Differential privacy noise multiplier (federated).")
@click.option("--dp-clip", default=1.0, show_default=True, type=float, help="DP clipping norm (federated).")
def finetune(base: str, data: str, name: str, eval_data: str | None, epochs: int, lr: float | None, rank: int,
             alpha: float, targets: str, dropout: float, batch_size: int, max_length: int, max_steps: int | None,
             checkpoint_every: int, seed: int, data_license: str | None, resume: bool, federated: bool, nodes: int,
             rounds: int, dp_noise: float | None, dp_clip: float) -> None:
    """Fine-tune BASE with LoRA on your own data and store the result as a new model."""
    if dp_noise is not None and not federated:
        raise InvalidRequest("--dp-noise applies to federated training only",
                             hint="add --federated, or drop --dp-noise for a local fine-tune")
    _require_extra()
    from openzoo.finetune.federated import federated_lr
    from openzoo.finetune.lora import LoraSettings

    if lr is None:
        lr = federated_lr(LoraSettings().lr, nodes) if federated else LoraSettings().lr
    settings = LoraSettings(rank=rank, alpha=alpha, targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
                            dropout=dropout, lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                            max_length=max_length, seed=seed, checkpoint_every=checkpoint_every)
    services = local_services()
    try:
        if federated:
            from openzoo.finetune.federated import FederatedRequest, finetune_federated

            render_training(finetune_federated(services, FederatedRequest(
                base=base, data=Path(data), name=name, settings=settings,
                eval_data=Path(eval_data) if eval_data else None, nodes=nodes,
                rounds=rounds, data_license=data_license, dp_noise=dp_noise, dp_clip=dp_clip)))
        else:
            from openzoo.finetune.run import FinetuneRequest
            from openzoo.finetune.run import finetune as run

            render_training(run(services, FinetuneRequest(base=base, data=data, name=name, settings=settings,
                                                          eval_data=eval_data, resume=resume,
                                                          data_license=data_license)))
    except KeyboardInterrupt:
        click.echo("interrupted: a checkpoint was kept; continue with --resume (no model was stored)", err=True)
        sys.exit(130)
    finally:
        services.close()


@click.group()
def federate() -> None:
    """Federated fine-tuning across machines with Flower (a SuperLink and one SuperNode per data owner)."""


@federate.command("link")
@click.option("--port", default=9092, show_default=True, type=int, help="Port of the SuperLink.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def federate_link(port: int, host: str) -> None:
    """Run a Flower SuperLink that coordinates data owners' SuperNodes."""
    from openzoo.finetune.federated import run_link

    sys.exit(run_link(host, port))


@federate.command("node")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="This data owner's JSONL (it never leaves this machine).")
@click.option("--link", "link", required=True, help="HOST:PORT of the SuperLink.")
@click.option("--port", default=9094, show_default=True, type=int, help="Local port of this SuperNode.")
def federate_node(data: Path, link: str, port: int) -> None:
    """Run a Flower SuperNode that trains on local data when the SuperLink asks."""
    from openzoo.finetune.federated import run_node

    sys.exit(run_node(data, link, port))
