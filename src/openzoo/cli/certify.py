"""CLI for certification: ``keys``, ``certify``, ``log``, ``card``, ``bom`` and ``verify``.

Thin over :mod:`openzoo.certify.service`; every command opens the store directly (no engine, no server)
so offline verification stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from openzoo.certify.service import Certification
from openzoo.certify.verification import VerifyResult
from openzoo.cli.common import local_certification as service
from openzoo.cli.common import local_services
from openzoo.errors import InvalidRequest


def _print_result(result: VerifyResult) -> None:
    for check in result.checks:
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[check.status]
        click.echo(f"{mark}  {check.name:<17} {check.reason}")
    click.echo(result.verdict())
    if not result.ok:
        sys.exit(1)


def _ask_passphrase(svc: Certification, key_names: list[str]) -> None:
    if any(svc.key_is_encrypted(n) for n in key_names) and not svc.has_passphrase():
        svc.use_passphrase(click.prompt("key passphrase", hide_input=True))


# --- verify ---------------------------------------------------------------------------------------


@click.command()
@click.argument("target", required=False)
@click.option("--store", "whole_store", is_flag=True, help="Re-hash every stored blob and check the catalog.")
@click.option("--signature", type=click.Path(path_type=Path, dir_okay=False),
              help="model-signing bundle for a model directory (default DIR/model.sig).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def verify(target: str | None, whole_store: bool, signature: Path | None, as_json: bool) -> None:
    """Verify a certified model offline (NAME), a signed model directory (PATH), or the store (--store)."""
    if whole_store:
        bad = 0
        for check in local_services().store.verify():
            mark = "ok  " if check.ok else "FAIL"
            click.echo(f"{mark} {check.digest} {'' if check.ok else check.detail}".rstrip())
            bad += not check.ok
        if bad:
            click.echo(f"{bad} problem(s) found", err=True)
            sys.exit(1)
        click.echo("store ok")
        return
    if not target:
        raise InvalidRequest("say what to verify", hint="use 'openzoo verify NAME', 'verify DIR' or 'verify --store'")
    path = Path(target)
    result = service().verify_directory(path, signature) if path.is_dir() else service().verify(target)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        sys.exit(0 if result.ok else 1)
    _print_result(result)


# --- keys -----------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Manage the zoo's, reviewers' and peer zoos' keys (ECDSA P-256)."""


@keys.command("generate")
@click.argument("name")
@click.option("--passphrase", is_flag=True, help="Encrypt the private key with a passphrase (prompted).")
def keys_generate(name: str, passphrase: bool) -> None:
    """Make a new key pair NAME (private key stored 0600)."""
    secret = click.prompt("passphrase", hide_input=True, confirmation_prompt=True).encode() if passphrase else None
    key = service().generate_key(name, secret)
    click.echo(f"generated {name} {key.key_id}")


@keys.command("list")
def keys_list() -> None:
    """List keys: own, trusted and revoked."""
    svc = service()
    svc.zoo_public()
    kinds = svc.trust_kinds()
    for info in svc.keyring.list():
        kind = "revoked" if info.revoked else ("own" if info.own else f"trusted {kinds.get(info.name, 'zoo')}")
        click.echo(f"{info.name:<16} {info.key_id[:16]}…  {kind}")


@keys.command("export")
@click.argument("name")
@click.option("--vkey", is_flag=True,
              help="For 'zoo': print the C2SP note verifier key of the zoo's log (Ed25519), for witnesses and Go.")
def keys_export(name: str, vkey: bool) -> None:
    """Print the public key NAME (PEM), e.g. 'keys export zoo > zoo.pub'."""
    svc = service()
    if name == "zoo":
        svc.zoo_public()
    if vkey:
        if name != "zoo" or svc.log.log_key is None:
            raise InvalidRequest("only the zoo's log has a note verifier key",
                                 hint="run 'openzoo keys export zoo --vkey'")
        click.echo(svc.log.log_key.verifier.vkey)
        return
    click.echo(svc.keyring.export(name).decode(), nl=False)


@keys.command("trust")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--reviewer", is_flag=True, help="Trust it as a reviewer key, not a peer zoo key.")
def keys_trust(name: str, file: Path, reviewer: bool) -> None:
    """Trust a peer zoo's public key (or a reviewer's, with --reviewer)."""
    key = service().trust(name, file.read_bytes(), "reviewer" if reviewer else "zoo")
    click.echo(f"trusted {name} {key.key_id}")


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Stop trusting key NAME (kept under keys/revoked)."""
    key_id = service().revoke_key(name)
    click.echo(f"revoked {name} {key_id}")


# --- certify --------------------------------------------------------------------------------------


@click.group()
def certify() -> None:
    """Certify models: policy, requests, approvals, seals and revocations."""


@certify.command("policy")
@click.option("--reviewers", help="Comma-separated reviewer key names.")
@click.option("--threshold", type=int, help="How many reviewers must approve (k of n).")
@click.option("--sign-with", "sign_with", default="", help="Current reviewers signing a new policy.")
@click.option("--witness", "witnesses", multiple=True,
              help="A witness's cosignature key (vkey, 'openzoo witness key' on its zoo); repeat for each.")
@click.option("--witness-threshold", type=int, default=None,
              help="How many of the witnesses must cosign a head that includes a seal (k of n).")
def certify_policy(reviewers: str | None, threshold: int | None, sign_with: str, witnesses: tuple[str, ...],
                   witness_threshold: int | None) -> None:
    """Show the policy, or set it (the first is trusted on creation; later ones need k signatures)."""
    svc = service()
    if reviewers is None and threshold is None:
        click.echo(svc.policy().to_yaml(), nl=False)
        return
    if not reviewers or threshold is None:
        raise InvalidRequest("give both --reviewers and --threshold")
    signers = [s.strip() for s in sign_with.split(",") if s.strip()]
    _ask_passphrase(svc, signers)
    k = witness_threshold if witness_threshold is not None else (len(witnesses) if witnesses else 0)
    policy = svc.set_policy(reviewers.split(","), threshold, signers, witnesses, k)
    witnessed = f", {k} of {len(witnesses)} witnesses" if witnesses else ""
    click.echo(f"policy v{policy.version}: {policy.threshold} of {len(policy.reviewers)} "
               f"({', '.join(r.name for r in policy.reviewers)}){witnessed} {policy.digest()}")


@certify.command("request")
@click.argument("model")
def certify_request(model: str) -> None:
    """Check the card, grade openness, look up the license, scan, and open a request."""
    req = service().request(model)
    ev = req.evidence
    click.echo(f"request {req.id} for {req.model} ({req.status})")
    click.echo(f"  license   {ev['license_summary']}")
    click.echo(f"  openness  {ev['openness_explained'].splitlines()[0]}")
    counts = ev["scan"]["counts"]
    click.echo(f"  scan      {', '.join(f'{n} {s}' for s, n in counts.items() if n) or 'no findings'}"
               f"{' (blocked)' if ev['scan']['blocked'] else ''}")
    for problem in ev["card"]["problems"]:
        click.echo(f"  card      {problem}")
    if req.threshold is not None:
        click.echo(f"  approvals {len(req.approvals)} of {req.threshold}")


@certify.command("approve")
@click.argument("model")
@click.option("--key", "key_name", required=True, help="The reviewer's key name.")
def certify_approve(model: str, key_name: str) -> None:
    """Approve a model's open request with a reviewer key; seals it when k approvals exist.

    An encrypted key is opened with OPENZOO_KEY_PASSPHRASE, or a passphrase asked for here."""
    svc = service()
    _ask_passphrase(svc, [key_name])
    result, seal = svc.approve(model, key_name)
    click.echo(f"approved by {key_name}: {result.summary()}")
    if seal is not None:
        click.echo(f"sealed {model}")


@certify.command("revoke")
@click.argument("model")
@click.option("--reason", required=True, help="Why the seal is revoked (logged).")
def certify_revoke(model: str, reason: str) -> None:
    """Revoke a model's seal (logged)."""
    index = service().revoke(model, reason)
    click.echo(f"revoked {model} (log entry {index})")


@certify.command("status")
@click.argument("model", required=False)
def certify_status(model: str | None) -> None:
    """List certification requests."""
    for req in service().requests(model):
        click.echo(f"{req.id}  {req.model:<24} {req.status:<8} {len(req.approvals)} of {req.threshold} approvals")


@certify.command("export-signature")
@click.argument("model")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory to write the model files and model.sig into.")
def certify_export_signature(model: str, directory: Path) -> None:
    """Write the model as a directory with an OpenSSF model-signing bundle (model.sig, zoo key)."""
    path = service().export_signature(model, directory)
    click.echo(f"wrote {path}")
    click.echo(f"check with: model_signing verify key {directory} --signature {path} --public_key zoo.pub")


# --- log ------------------------------------------------------------------------------------------


@click.group()
def log() -> None:
    """The transparency log: heads, entries, proofs, verification and monitoring."""


@log.command("head")
def log_head() -> None:
    """Print the latest signed tree head (checkpoint), with the witnesses' cosignatures it has."""

    click.echo(service().witnesses.cosigned(), nl=False)


@log.command("show")
@click.option("--start", default=0, type=int)
@click.option("--limit", default=50, type=int)
@click.option("--kind", default=None)
def log_show(start: int, limit: int, kind: str | None) -> None:
    """Print log entries."""
    for e in service().log.entries(start, limit, kind):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.timestamp / 1000))
        click.echo(f"{e.index:>6} {when} {e.kind:<10} {json.dumps(e.body, sort_keys=True)[:160]}")


@log.command("prove")
@click.argument("index", type=int, required=False)
@click.option("--size", type=int, default=None, help="Tree size (default: the latest signed head).")
@click.option("--consistency", "old", type=int, default=None, help="Prove consistency from this old size.")
def log_prove(index: int | None, size: int | None, old: int | None) -> None:
    """Print an inclusion proof for INDEX, or a consistency proof with --consistency OLD."""
    from openzoo.facts.canonical import b64encode

    svc = service()
    head = svc.head()
    if old is not None:
        proof = svc.log.consistency_proof(old, size)
        click.echo(json.dumps({"old_size": old, "new_size": size or svc.log.size(),
                               "proof": [b64encode(p) for p in proof]}, indent=2))
        return
    if index is None:
        raise InvalidRequest("give an entry INDEX or --consistency OLD")
    receipt = svc.log.receipt(index, head if size is None else svc.log.checkpoint(size))
    click.echo(json.dumps(receipt.to_json(), indent=2))


@log.command("verify")
def log_verify() -> None:
    """Recompute every entry and the root, check every signed head, and check the latest head against the
    heads of this log seen before (the same check as 'openzoo log monitor')."""
    from openzoo.registry.monitor import Monitor

    svc = service()
    report = svc.log.verify_log(svc.zoo_keys())
    problems = list(report.problems)
    if not problems:
        watched = Monitor(svc).check_self()
        problems += [f"{o.status}: {o.detail}" for o in watched.observations if o.status not in ("ok", "known")]
        problems += [f"fork evidence {f.id[:16]} against this log is on record" for f in
                     watched.forks.get(svc.log.origin, [])]
    click.echo(f"entries        {report.size}")
    click.echo(f"signed heads   {report.heads_checked}")
    for p in problems:
        click.echo(f"FAIL  {p}")
    if problems:
        click.echo("log NOT verified")
        sys.exit(1)
    click.echo("log verified: every entry, every head signature, consistent with the heads seen before")


@log.command("monitor")
@click.argument("url", required=False)
@click.option("--key", "key_name", default=None, help="Trust only this key (default: every trusted zoo key).")
def log_monitor(url: str | None, key_name: str | None) -> None:
    """Check that a log (this zoo's, or the zoo at URL) only grew since the heads seen before; prove forks.

    The same round as 'openzoo monitor URL'."""
    from openzoo.cli.monitor import run_check

    run_check(url, key_name)


# --- cards, BOM -----------------------------------------------------------------------------------


@click.command()
@click.argument("model")
@click.option("--edit", is_flag=True, help="Edit the card in $EDITOR (a new manifest; the old one is kept).")
@click.option("--import", "import_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Replace the card with a Hugging Face README.md.")
@click.option("--export", "export_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the card as README.md to this path ('-' for stdout).")
@click.option("--html", is_flag=True, help="Print the card body as sanitized HTML.")
def card(model: str, edit: bool, import_file: Path | None, export_file: Path | None, html: bool) -> None:
    """Show a model's card (made from GGUF metadata on first use)."""
    from openzoo.facts.card import parse_card

    svc = service()
    current = svc.ensure_card(model)
    if import_file is not None:
        svc.set_card(model, parse_card(import_file.read_text(encoding="utf-8")))
        click.echo(f"card of {model} replaced from {import_file}")
        return
    if edit:
        text = click.edit(current.render(), extension=".md")
        if text is None or text == current.render():
            click.echo("card unchanged")
            return
        svc.set_card(model, parse_card(text))
        click.echo(f"card of {model} updated")
        return
    if export_file is not None and str(export_file) != "-":
        export_file.write_text(current.render(), encoding="utf-8")
        click.echo(f"wrote {export_file}")
        return
    click.echo(current.html() if html else current.render(), nl=False)


@click.command()
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None)
def bom(model: str, output: Path | None) -> None:
    """Write a CycloneDX 1.6 ML-BOM for a model (validated against the 1.6 schema)."""
    from openzoo.certify.bom import build_bom

    text = json.dumps(build_bom(service(), model), indent=2)
    if output is not None:
        output.write_text(text + "\n")
        click.echo(f"wrote {output}")
    else:
        click.echo(text)


def openness_text(model: str) -> str:
    """``show NAME --openness``: the MOF class, each component, and what blocks the next class."""
    svc = service()
    svc.ensure_card(model)
    report = svc.openness(model)
    facts = svc.license_facts(model)
    from openzoo.facts.licenses import describe

    lines = [f"License: {describe(facts)}", report.explain(), "", "Components:"]
    for r in report.components:
        req = "required" if r.component.required else "optional"
        cls = {3: "III", 2: "II", 1: "I"}[r.component.mof_class]
        lines.append(f"  {r.component.name:<34} class {cls:<3} {req:<8} {r.reason():<40} "
                     f"{', '.join(e[:26] for e in r.evidence)}")
    return "\n".join(lines)

