"""``openzoo dataset import|list|show|card|rm``: datasets in the store, thin over :mod:`openzoo.datasets.service`.

Sealing, logging, verifying, pushing and pulling use the same verbs as models (``openzoo certify request
NAME``, ``openzoo verify NAME``, ``openzoo push NAME``, ``openzoo pull HOST/ns/NAME:TAG``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import click

from openzoo.cli.common import local_services
from openzoo.cli.output import ago, human_size, render_progress, table
from openzoo.events import Progress
from openzoo.facts.datafiles import FORMATS


@click.group()
def dataset() -> None:
    """Datasets: import (JSONL, CSV, Parquet, text), list, show, datasheet, remove."""


@dataset.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Name for the dataset, e.g. me/reviews:v1.")
@click.option("--license", "license_id", default=None, help="SPDX id of the data's license (e.g. CC-BY-4.0).")
@click.option("--datasheet", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="The datasheet: a Hugging Face dataset card README.md (default: a folder's README.md, "
                   "else a draft made from the data).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Data format, when the file names do not say it.")
def dataset_import(paths: tuple[Path, ...], name: str, license_id: str | None, datasheet: Path | None,
                   fmt: str | None) -> None:
    """Check every row of the files (or of a dataset folder) and store them as dataset NAME."""
    text = datasheet.read_text(encoding="utf-8") if datasheet is not None else None
    events = local_services().datasets.import_files(list(paths), name, license=license_id, datasheet=text, fmt=fmt)
    seen: list[Progress] = []

    def track() -> Iterator[Progress]:
        for event in events:
            seen.append(event)
            yield event

    render_progress(track())
    done = seen[-1]
    click.echo(f"imported {done.detail['name']}: {done.detail['rows']} rows, data {done.detail['data_digest']}, "
               f"manifest {done.digest}")


@dataset.command("list")
def dataset_list() -> None:
    """List the datasets in the store."""
    rows = [[d.display, d.digest[7:19], str(d.config.rows), d.config.format, human_size(d.config.size),
             d.config.license or "unknown", "sealed" if d.sealed else "-", ago(d.modified_at)]
            for d in local_services().datasets.list_datasets()]
    click.echo(table(rows, ["NAME", "ID", "ROWS", "FORMAT", "SIZE", "LICENSE", "SEAL", "MODIFIED"]))


@dataset.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the dataset's record as JSON.")
def dataset_show(name: str, as_json: bool) -> None:
    """Show a dataset: digests, rows, files, columns, license and seal."""
    from openzoo.facts.licenses import describe

    found = local_services().datasets.get(name)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    c = found.config
    rows = [["manifest", found.digest], ["data", c.data_digest], ["rows", str(c.rows)], ["format", c.format],
            ["size", human_size(c.size)], ["license", describe(found.license)],
            ["seal", "sealed (check it with 'openzoo verify')" if found.sealed else "none"],
            ["modified", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found.modified_at))]]
    click.echo(f"  Dataset {found.display}")
    click.echo("\n".join(f"    {k:<12}{v}" for k, v in rows))
    click.echo("\n  Files")
    for f in c.files:
        columns = ", ".join(f"{col.name}: {col.type}" for col in f.columns)
        click.echo(f"    {f.name:<28}{f.format:<8}{f.rows:>9} rows  {f.digest}\n      columns  {columns}")


@dataset.command("card")
@click.argument("name")
@click.option("--export", "export_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the datasheet as README.md to this path.")
@click.option("--import", "import_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              default=None, help="Replace the datasheet with a Hugging Face dataset card README.md.")
def dataset_card(name: str, export_file: Path | None, import_file: Path | None) -> None:
    """Print the datasheet as Hugging Face dataset-card markdown with YAML front matter."""
    from openzoo.facts.card import parse_card

    services = local_services()
    found = services.datasets.get(name)
    if import_file is not None:
        services.certification.set_card(found.display, parse_card(import_file.read_text(encoding="utf-8")))
        click.echo(f"datasheet of {found.display} replaced from {import_file}")
        return
    text = services.datasets.datasheet(found.display).render()
    if export_file is not None:
        export_file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {export_file}")
        return
    click.echo(text, nl=False)


@dataset.command("rm")
@click.argument("names", nargs=-1, required=True)
def dataset_rm(names: tuple[str, ...]) -> None:
    """Remove datasets and the data no other dataset or model uses."""
    services = local_services()
    for name in names:
        services.datasets.delete(name)
        click.echo(f"deleted '{name}'")
