"""``openzoo witness``: witness other logs (C2SP tlog-witness) and have this zoo's log witnessed.

Thin over :mod:`openzoo.certify.witness` (this zoo as a witness: ``add``, ``list``, ``rm``, ``key``) and
:mod:`openzoo.certify.witnessing` (this zoo's own witnesses: ``ask``, ``drop``, ``cosign``).
"""

from __future__ import annotations

import sys
import time

import click

from openzoo.cli.common import local_certification as service
from openzoo.cli.common import local_services


@click.group()
def witness() -> None:
    """Witness other zoos' logs, and ask other zoos to witness this one (C2SP tlog-witness, cosignature/v1).

    On the witness: 'openzoo witness add ORIGIN VKEY URL' with the log's origin and note key (both from
    'openzoo keys export zoo --vkey' on the log's zoo: the origin is the vkey's name). On the log's zoo:
    'openzoo witness ask VKEY URL' with the witness's key ('openzoo witness key' there) and its URL.
    """


@witness.command("add")
@click.argument("origin")
@click.argument("vkey")
@click.argument("url", required=False)
def add(origin: str, vkey: str, url: str | None) -> None:
    """Witness the log ORIGIN whose checkpoints VKEY signs (URL: where that log is served, for people)."""
    found = service().witness.add(origin, vkey, url)
    click.echo(f"witnessing {found.origin} (key {found.vkey.split('+')[1]}); its zoo asks this one at "
               "/zoo/witness/add-checkpoint")


@witness.command("rm")
@click.argument("origin")
def rm(origin: str) -> None:
    """Stop witnessing the log ORIGIN (what was cosigned stays valid)."""
    service().witness.remove(origin)
    click.echo(f"no longer witnessing {origin}")


@witness.command("key")
def key() -> None:
    """Print this zoo's witness key (cosignature/v1 vkey), for the policies and zoos that rely on it."""
    click.echo(service().witness.signer.verifier.vkey)


@witness.command("list")
def list_() -> None:
    """The logs this zoo witnesses, and the witnesses this zoo's log asks."""
    svc = service()
    logs = svc.witness.logs()
    click.echo(f"witnessing {len(logs)} log(s):")
    for found in logs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(found.updated_at)) + " UTC" if found.updated_at \
            else "never"
        click.echo(f"  {found.origin:<32} cosigned {found.size:>7} entries, last {when}  {found.url or ''}".rstrip())
    asked = svc.witnesses.witnesses()
    click.echo(f"this log ({svc.log.origin}) asks {len(asked)} witness(es):")
    for w in asked:
        state = f"ERROR {w.last_error}" if w.last_error else "ok"
        click.echo(f"  {w.name:<32} cosigned {w.size:>7} entries  {w.url}  {state}")


@witness.command("ask")
@click.argument("vkey")
@click.argument("url")
def ask(vkey: str, url: str) -> None:
    """Ask the witness with cosignature key VKEY at URL (a zoo's URL, or a witness's submission prefix) to
    cosign this zoo's checkpoints; 'openzoo serve' asks after every append."""
    found = service().witnesses.add(vkey, url)
    click.echo(f"asking {found.name} at {found.url}/add-checkpoint; it must first run 'openzoo witness add "
               f"{service().log.origin} <this zoo's vkey>' ('openzoo keys export zoo --vkey')")


@witness.command("drop")
@click.argument("name")
def drop(name: str) -> None:
    """Stop asking the witness NAME (its cosignatures kept so far stay)."""
    service().witnesses.remove(name)
    click.echo(f"no longer asking {name}")


@witness.command("cosign")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each witness.")
def cosign(timeout: float) -> None:
    """Ask every witness now to cosign the latest checkpoint; exit 3 if one did not."""
    answers = service().witnesses.ask(timeout, local_services().config.remote_api_key or None)
    if not answers:
        click.echo("no witnesses to ask: add one with 'openzoo witness ask VKEY URL'")
        return
    for answer in answers:
        click.echo(f"{'ok  ' if answer.ok else 'FAIL'}  {answer.witness:<32} size {answer.size}: {answer.detail}")
    if not all(a.ok for a in answers):
        sys.exit(3)
