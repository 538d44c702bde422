"""``openzoo monitor``: watch other zoos' transparency logs, list fork evidence, check evidence offline.

Thin over :mod:`openzoo.registry.monitor` (the rounds) and :mod:`openzoo.certify.gossip` (the evidence).
``openzoo monitor ZOO_URL`` is ``openzoo monitor check ZOO_URL``; ``openzoo log monitor [URL]`` and
``openzoo log verify`` run the same rounds. Exit status of a round: 0 all consistent, 1 a fork is on
record for a log it involved, 3 no fork but something could not be checked or a zoo hides entries it
signed before (unreachable, refused, unverified, stale).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import click

from openzoo.certify.checkpoint import LogKey
from openzoo.certify.gossip import MAX_EVIDENCE_BYTES, evidence_from_json, origin_for, pinned_key, verify_evidence
from openzoo.certify.gossip_store import StoredFork
from openzoo.certify.keys import PublicKey, load_public_pem
from openzoo.certify.note import ED25519, parse_vkey
from openzoo.cli.common import local_certification as service
from openzoo.cli.common import local_services
from openzoo.errors import InvalidRequest, OpenzooError
from openzoo.facts.canonical import parse_json
from openzoo.registry.monitor import Monitor, MonitorReport

EXIT_FORK = 1
EXIT_PROBLEM = 3


class _DefaultCheck(click.Group):
    """``openzoo monitor URL`` means ``openzoo monitor check URL``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultCheck)
def monitor() -> None:
    """Watch other zoos' transparency logs and prove forks: 'openzoo monitor ZOO_URL'.

    Each round checks the zoo's signed head, and the heads it saw of other zoos (gossip), against this
    zoo's own copy of each log, and stores fork evidence a third party can check offline. Pin each zoo's
    key first ('openzoo keys trust NAME zoo.pub'). Exit status: 0 consistent, 1 fork, 3 not checkable.
    """


def run_check(url: str | None, key_name: str | None = None, *, as_json: bool = False,
              evidence_dir: Path | None = None) -> None:
    """One round against ``url`` (or this zoo's own log) printed, then exit with the round's status."""
    svc = service()
    keys = [svc.keyring.load(key_name)] if key_name else None
    checker = Monitor(svc, keys, api_key=local_services().config.remote_api_key or None)
    report = checker.check_zoo(url) if url else checker.check_self()
    if evidence_dir is not None:
        for forks in report.forks.values():
            for fork in forks:
                click.echo(f"wrote {write_evidence(fork, evidence_dir)}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _render(report, checker.keys)
    sys.exit(EXIT_FORK if report.forked else EXIT_PROBLEM if report.problems else 0)


def _render(report: MonitorReport, keys: list[PublicKey]) -> None:
    for found in report.observations:
        name = report.names.get(found.origin or "", found.origin or "-")
        click.echo(f"{found.status:<11} {name:<16} {found.source:<32} {found.detail}")
    for origin, forks in report.forks.items():
        if not forks:
            continue
        name = report.names.get(origin, origin)
        key = pinned_key(origin, keys)
        click.echo(f"FORK: {name} ({origin}) signed two histories; {len(forks)} piece(s) of evidence on record:",
                   err=True)
        for fork in forks:
            click.echo(f"  {fork.id[:16]}  {verify_evidence(fork.evidence, key).explain()}", err=True)
        click.echo("  write them with 'openzoo monitor forks --write DIR' and check one anywhere with "
                   "'openzoo monitor verify-evidence FILE --key ZOO.pub'", err=True)
    if not report.forked and not report.problems:
        click.echo(f"{report.target}: consistent")


def write_evidence(fork: StoredFork, directory: Path) -> Path:
    """Write one piece of evidence as ``fork-<origin>-<id>.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"fork-{re.sub(r'[^A-Za-z0-9]+', '-', fork.origin)}-{fork.id[:16]}.json"
    path.write_text(json.dumps(fork.evidence.to_json(), indent=2) + "\n")
    return path


@monitor.command("check")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print the round as JSON.")
@click.option("--evidence-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write the fork evidence on record for the logs checked into this directory.")
def check(url: str, as_json: bool, evidence_dir: Path | None) -> None:
    """Check the zoo at URL: its head, the heads it gossips and the forks it knows, against this zoo's view."""
    run_check(url, as_json=as_json, evidence_dir=evidence_dir)


@monitor.command("status")
def status() -> None:
    """The logs this zoo watches: entries copied, heads seen (and from where), forks on record."""
    svc = service()
    store = svc.gossip
    names = {origin_for(key): svc.key_name(key) for key in svc.zoo_keys()}
    views = store.logs()
    if not views:
        click.echo("no logs watched yet: run 'openzoo monitor ZOO_URL'")
        return
    for view in views:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(view.checked_at))
        click.echo(f"{names.get(view.origin, '?'):<16} {view.origin}  {view.size} entries copied, {view.heads} "
                   f"heads, {view.forks} fork evidence  {view.url or '(no URL)'}  last {when} UTC")
        sources: dict[str, int] = {}
        for _, source, _, times in store.sightings(view.origin):
            sources[source] = sources.get(source, 0) + times
        for source, times in sorted(sources.items()):
            click.echo(f"    seen {times:>5}x from {source}")


@monitor.command("forks")
@click.option("--origin", default=None, help="Only forks of this log.")
@click.option("--write", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write each piece of evidence as a JSON file into this directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the evidence as JSON.")
def forks(origin: str | None, directory: Path | None, as_json: bool) -> None:
    """List the fork evidence on record (found here or received by gossip and checked)."""
    found = service().gossip.forks(origin, limit=10_000)
    if as_json:
        click.echo(json.dumps([f.to_json() for f in found], indent=2))
    for fork in found:
        if directory is not None:
            click.echo(f"wrote {write_evidence(fork, directory)}")
        elif not as_json:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(fork.found_at))
            click.echo(f"{fork.id[:16]}  {fork.origin}  {fork.evidence.kind:<15} {when} UTC  from {fork.source}")
    if not found and not as_json:
        click.echo("no forks on record")


@monitor.command("verify-evidence")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key", "key", required=True,
              help="The log's public key: a PEM file ('openzoo keys export zoo' on that zoo), a trusted key's name, "
                   "or the log's note verifier key ('openzoo keys export zoo --vkey', what its witnesses know).")
def verify_evidence_cmd(files: tuple[Path, ...], key: str) -> None:
    """Check fork evidence offline with nothing but the log's public key; exit 0 only if every FILE proves a
    fork (each is evidence as written by 'monitor forks --write', or one item of /zoo/gossip/forks)."""
    path = Path(key)
    public: LogKey
    if path.is_file():
        public = load_public_pem(path.read_bytes(), "key")
    elif key.count("+") >= 2:
        public = parse_vkey(key, ED25519)
    else:
        public = service().keyring.load(key)
    for file in files:
        if file.stat().st_size > MAX_EVIDENCE_BYTES:
            raise InvalidRequest(f"{file} is larger than {MAX_EVIDENCE_BYTES} bytes: not fork evidence")
        data = parse_json(file.read_bytes(), str(file))
        if isinstance(data, dict) and "evidence" in data and "type" not in data:
            data = data["evidence"]
        try:
            fork = verify_evidence(evidence_from_json(data), public)
        except OpenzooError as exc:
            raise type(exc)(f"{file}: {exc.message}", hint=exc.hint) from exc
        click.echo(f"{file}: valid fork evidence ({fork.kind}, key {public.key_id[:16]}…): {fork.explain()}")
