"""The ``openzoo`` command: Ollama's verbs where they overlap, plus openzoo's own.

Errors are mapped once, here: an :class:`OpenzooError` prints one line (the message and the hint that
names the next step) and exits non-zero; ``OPENZOO_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from openzoo import __version__
from openzoo import config as configuration
from openzoo.cli import audit, certify, datasets, finetune, monitor, run, serve, witness
from openzoo.cli.common import load_config, local_services
from openzoo.cli.output import ago, human_size, render_progress, table
from openzoo.errors import InvalidRequest, NotFound, OpenzooError
from openzoo.registry.oci.formats import WRITTEN as OCI_FORMATS


def _fail(exc: BaseException) -> NoReturn:
    if configuration.debug_enabled():
        traceback.print_exc()
    if isinstance(exc, OpenzooError):
        hint = f" ({exc.hint})" if exc.hint else ""
        click.echo(f"Error: {exc.message}{hint}", err=True)
        sys.exit(1)
    click.echo(f"Error: {type(exc).__name__}: {exc} (run with OPENZOO_DEBUG=1 for the traceback)", err=True)
    sys.exit(2)


class Group(click.Group):
    """Runs every command under the one error mapping."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)
        except Exception as exc:
            _fail(exc)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openzoo")
def cli() -> None:
    """openzoo: curate, certify and run open AI models locally."""


# --- models ----------------------------------------------------------------------------------


@cli.command("list")
@click.option("--cache", is_flag=True, help="List the fine-tuning cache (dequantized bases) instead.")
def list_cmd(cache: bool = False) -> None:
    """List models in the store."""
    services = local_services()
    if cache:
        _list_cache(services)
        return
    rows = [[m.name, m.digest[7:19], human_size(m.size), ago(m.modified_at)] for m in services.models.list_models()]
    click.echo(table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]))


def _list_cache(services: Any) -> None:
    """The dequantized bases fine-tuning keeps (outside every model's size), with the models they serve."""
    from openzoo.finetune import dequant

    cache = dequant.DequantCache.from_config(services.config)
    entries = [*dequant.legacy_entries(services.store), *cache.entries()]
    by_weights: dict[str, list[str]] = {}
    for model in services.models.list_models():
        try:
            by_weights.setdefault(dequant.gguf_digest(services.models.resolve(model.name)), []).append(model.name)
        except OpenzooError:
            continue
    rows = [["finetune", e.gguf_digest[7:19], ", ".join(by_weights.get(e.gguf_digest, [])) or "-",
             human_size(e.size), ago(e.last_used), str(e.path) if e.path else "(in the store: an older zoo's layout)"]
            for e in entries]
    click.echo(table(rows, ["CACHE", "BASE ID", "BASE OF", "SIZE", "USED", "WHERE"]))
    click.echo(f"{human_size(sum(e.size for e in entries))} of at most {human_size(cache.max_bytes)} "
               f"(OPENZOO_FINETUNE_CACHE_BYTES); 'openzoo rm --cache' empties it", err=True)


@cli.command("ls", hidden=True)
@click.option("--cache", is_flag=True, hidden=True)
def ls_cmd(cache: bool = False) -> None:
    list_cmd.callback(cache)  # type: ignore[misc]


@cli.command()
@click.argument("model")
@click.option("--modelfile", is_flag=True, help="Show the Modelfile.")
@click.option("--license", "license_", is_flag=True, help="Show the license.")
@click.option("--parameters", is_flag=True, help="Show the parameters.")
@click.option("--template", is_flag=True, help="Show the chat template.")
@click.option("--system", is_flag=True, help="Show the system prompt.")
@click.option("-v", "--verbose", is_flag=True, help="Show every metadata key and tensor.")
@click.option("--openness", is_flag=True, help="Explain the MOF openness class and what blocks the next one.")
@click.option("--lineage", is_flag=True, help="Show how a fine-tuned model was made (with -v: the JSON record).")
def show(model: str, modelfile: bool, license_: bool, parameters: bool, template: bool, system: bool,
         verbose: bool, openness: bool, lineage: bool) -> None:
    """Show information about a model."""
    if lineage:
        from openzoo.finetune.lineage import read_lineage, render_lineage, walk_lineage

        services = local_services()
        record = read_lineage(services.models, model)
        if verbose:
            click.echo(json.dumps(record, indent=2))
            return
        click.echo(walk_lineage(services.models, services.datasets, model) + "\n\n" + render_lineage(record))
        return
    from openzoo.show import show_model

    if openness:
        from openzoo.cli.certify import openness_text

        click.echo(openness_text(model))
        return

    info = show_model(local_services().models, model, verbose)
    for flag, text in ((modelfile, info.modelfile), (license_, info.license), (parameters, info.parameters),
                       (template, info.template), (system, info.system)):
        if flag:
            click.echo(text or "")
            return
    d, meta = info.details, info.model_info
    arch = meta.get("general.architecture", "")
    rows: list[tuple[str, object]] = [("architecture", arch), ("parameters", d.parameter_size),
                                      ("context length", str(meta.get(f"{arch}.context_length", ""))),
                                      ("embedding length", str(meta.get(f"{arch}.embedding_length", ""))),
                                      ("quantization", d.quantization_level)]
    rows.append(("kind", "base (completion)" if info.model_kind == "base" else "chat (instruction-tuned)"))
    click.echo("  Model")
    click.echo("\n".join(f"    {k:<20}{v}" for k, v in rows))
    click.echo("\n  Capabilities")
    click.echo("\n".join(f"    {c}" for c in info.capabilities))
    if info.quantization:
        from openzoo.facts.quantization import quality_lines

        click.echo(f"\n  Quantization (from {info.quantization['source']})")
        record = {"quantization": info.quantization, "quality": info.quantization["quality"]}
        click.echo("\n".join(f"    {k:<26}{v}" for k, v in quality_lines(record)))
    if info.parameters:
        click.echo("\n  Parameters")
        click.echo("\n".join("    " + line for line in info.parameters.splitlines()))
    if info.license:
        click.echo("\n  License")
        click.echo("\n".join("    " + line for line in info.license.strip().splitlines()[:4]))
    if verbose:
        click.echo("\n  Metadata")
        for key, value in meta.items():
            click.echo(f"    {key:<40}{json.dumps(value)[:80]}")


@cli.command()
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Accept an unverifiable model (marked uncertified).")
@click.option("--name", default=None, help="Local name for an oci:// pull (default: from the reference).")
def pull(model: str, insecure: bool, name: str | None) -> None:
    """Pull a model: the embedded default (gemma3:270m), HOST:PORT/ns/name:tag from another zoo, or
    oci://HOST:PORT/REPO:TAG from an OCI registry (both verified against pinned zoo keys)."""
    render_progress(local_services().transfers.pull(model, insecure=insecure, name=name))


@cli.command()
@click.argument("model")
@click.argument("destination", required=False)
@click.option("--to", "to", default=None, help="HOST:PORT/ns/name:tag (default: MODEL's own host).")
@click.option("--api-key", default=None, help="The receiving zoo's API key (default: OPENZOO_REMOTE_API_KEY).")
@click.option("--format", "format_", type=click.Choice(list(OCI_FORMATS)), default=None,
              help="Artifact format for an oci:// push (default: modelpack; a dataset: openzoo).")
def push(model: str, destination: str | None, to: str | None, api_key: str | None, format_: str | None) -> None:
    """Push a model to another zoo that accepts it with an API key (HOST:PORT/ns/name:tag), or to an OCI
    registry (oci://HOST:PORT/REPO:TAG) as CNCF ModelPack, Docker Model Runner, Ollama or openzoo artifact
    (--format), with its card, seal and proof attached."""
    if destination and to:
        raise InvalidRequest("give the destination once", hint="either 'push MODEL DEST' or 'push MODEL --to DEST'")
    render_progress(local_services().transfers.push(model, destination or to, api_key=api_key, format=format_))


@cli.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Name for the model, e.g. me/mymodel:v1.")
@click.option("--license", "license_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A file with the model's license text.")
@click.option("--license-id", default=None, help="SPDX id of that license (e.g. Apache-2.0), for cards and BOMs.")
def import_cmd(path: Path, name: str, license_file: Path | None, license_id: str | None) -> None:
    """Add a GGUF file, or a Hugging Face safetensors folder (converted to GGUF to serve), to the store."""
    text = license_file.read_text() if license_file else None
    models = local_services().models
    if path.is_dir():
        render_progress(models.import_folder(path, name, license_text=text, license_id=license_id))
        spec = models.resolve(name)
        if spec.manifest is not None:
            click.echo("layers:", err=True)
            for layer in spec.manifest.layers:
                label = layer.annotations.get("org.openzoo.filename", "")
                click.echo(f"  {layer.media_type:<50} {layer.digest[7:19]}  {human_size(layer.size):>9}  {label}",
                           err=True)
        return
    if not path.is_file():
        raise NotFound(f"no such file or folder: {path}", hint="give the path of a .gguf file or a model folder")
    render_progress(models.import_gguf(path, name, license_text=text, license_id=license_id))


@cli.command()
@click.argument("model")
@click.option("-f", "--file", "modelfile", type=click.Path(path_type=Path, dir_okay=False),
              help="Path to the Modelfile (default: ./Modelfile).")
@click.option("-q", "--quantize", default=None, help="Quantize FROM to this llama.cpp type (Q4_0, Q8_0, IQ4_XS...).")
@click.option("--imatrix", default=None, help="With --quantize: an importance matrix from 'builtin' or DATASET.")
@click.option("--heldout", default=None, help="With --quantize: measure the loss on this stored dataset.")
@click.option("--heldout-tokens", type=int, default=None, help="With --quantize: held-out tokens to measure on.")
def create(model: str, modelfile: Path | None, quantize: str | None, imatrix: str | None, heldout: str | None,
           heldout_tokens: int | None) -> None:
    """Create a model from a Modelfile (with --quantize: FROM quantized, its cost measured and recorded)."""
    from openzoo.formats.modelfile import parse_modelfile
    from openzoo.models import CreateSpec

    path = modelfile or Path("Modelfile")
    if not path.is_file():
        raise NotFound(f"no such Modelfile: {path}", hint="pass one with -f PATH")
    parsed = parse_modelfile(path.read_text())
    if quantize is not None:
        from openzoo.cli.quantize import create_quantized

        create_quantized(local_services(), model, parsed, quantize, imatrix=imatrix, heldout=heldout,
                         tokens=heldout_tokens)
        return
    if imatrix or heldout or heldout_tokens:
        raise InvalidRequest("--imatrix, --heldout and --heldout-tokens go with --quantize",
                             hint="add --quantize TYPE")
    spec = CreateSpec(name=model, base=parsed.from_, template=parsed.template, system=parsed.system,
                      parameters=parsed.parameters or None, license=tuple(parsed.licenses),
                      messages=tuple({"role": m.role, "content": m.content} for m in parsed.messages),
                      allow_paths=True, base_dir=path.resolve().parent,
                      adapter_paths=tuple(str(a) for a in parsed.adapters))
    render_progress(local_services().models.create(spec))


@cli.command()
@click.argument("source")
@click.argument("destination")
def cp(source: str, destination: str) -> None:
    """Copy a model under a new name (no data is copied)."""
    local_services().models.copy(source, destination)
    click.echo(f"copied '{source}' to '{destination}'")


@cli.command()
@click.argument("models", nargs=-1)
@click.option("--cache", is_flag=True, help="Empty the fine-tuning cache (dequantized bases; rebuilt when needed).")
def rm(models: tuple[str, ...], cache: bool) -> None:
    """Remove models and the data no other model uses."""
    if not models and not cache:
        raise InvalidRequest("name the models to remove", hint="openzoo rm NAME..., or 'openzoo rm --cache'")
    services = local_services()
    if cache:
        from openzoo.finetune import dequant

        removed = dequant.clear(services.store, dequant.DequantCache.from_config(services.config))
        click.echo(f"removed {len(removed)} cached base(s), {human_size(sum(e.size for e in removed))}")
    for name in models:
        services.models.delete(name)
        click.echo(f"deleted '{name}'")


# `openzoo verify` (models, signed directories and --store) lives in openzoo.cli.certify.


@cli.command()
@click.option("--markdown", is_flag=True, help="Print docs/configuration.md.")
def config(markdown: bool) -> None:
    """Show the configuration openzoo runs with."""
    if markdown:
        click.echo(configuration.render_markdown(), nl=False)
        return
    current = load_config()
    for setting in configuration.SETTINGS:
        value = getattr(current, setting.field, "")
        if setting.field in configuration.SECRETS and value:
            value = "(set)"
        click.echo(f"OPENZOO_{setting.name}={value}")


# The commands of the other modules, added explicitly (they import cli.common, never this module).
for _command in (audit.audit, certify.verify, certify.keys, certify.certify, certify.log, certify.card, certify.bom,
                 datasets.dataset, finetune.finetune, finetune.federate, monitor.monitor, run.run, run.ps, run.stop,
                 serve.serve, witness.witness):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="openzoo")
