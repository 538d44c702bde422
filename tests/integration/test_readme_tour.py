"""The README's tour, run as a newcomer runs it: a documentation test, so the README cannot drift from the CLI.

Convention (stated in the README too): every fenced ```` ```console ```` block of ``README.md`` is part of
the tour. A line starting with ``$ `` is a command, run with ``bash``; the lines under it, up to the next
command, are what it prints. Each printed line must appear in the command's output (stdout and stderr,
in any order), where ``…`` stands for any text and a line of only ``…`` for any lines. Every command must
exit 0. The blocks run in order, in a scratch directory that sees the clone's ``src`` and ``docs`` through
links (the tour's paths are relative to a fresh clone), with a fresh ``OPENZOO_HOME``.

What the README leaves to another terminal, the test provides: ``make run``'s server (``openzoo serve``
on a fresh home, which imports the default model on first start) and an OCI registry (Debian's
``docker-registry``), each on a free loopback port that replaces the documented one (``11434``,
``5000``) in the commands; ``OPENZOO_HOST`` points the CLI at that server, as ``make run``'s default does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.oci_registry import start_registry, stop_registry
from support.server import start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVER_PORT = "127.0.0.1:11434"
REGISTRY_PORT = "127.0.0.1:5000"
ANY = "…"

# the default model's first import, a dequantization and a 12-step fine-tune on a shared 2-core machine
pytestmark = pytest.mark.timeout(3600)


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def tour(text: str) -> list[Step]:
    """The ``$`` commands of every ```` ```console ```` block, in order, with the lines each prints."""
    steps: list[Step] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append(Step(line[2:]))
            elif line.strip() and steps:
                steps[-1].expected.append(line.strip())
    return steps


def matches(expected: str, output: list[str]) -> bool:
    pattern = re.compile(".*".join(re.escape(part) for part in expected.split(ANY)))
    return any(pattern.fullmatch(line.strip()) for line in output)


def test_tour_convention_parses() -> None:
    steps = tour("text\n```console\n$ a --b\nout 1\n… out …\n\n$ c\n```\n```sh\n$ not run\n```\n")
    assert [(s.command, s.expected) for s in steps] == [("a --b", ["out 1", "… out …"]), ("c", [])]
    assert matches("… out …", ["x", " an out here "]) and not matches("out 1", ["out 12"])


def test_every_verb_is_in_the_commands_table() -> None:
    """Each command of ``openzoo --help`` appears as ``openzoo VERB`` (or a listed `VERB`) in the README."""
    from openzoo.cli.main import cli

    text = README.read_text()
    missing = [verb for verb, command in cli.commands.items() if not command.hidden
               and f"openzoo {verb}" not in text and f"`{verb}`" not in text]
    assert missing == []


def test_readme_tour(tmp_path: Path) -> None:
    steps = tour(README.read_text())
    verbs = {verb for s in steps for verb in re.findall(r"\bopenzoo (\w+)", s.command)}
    assert {"run", "certify", "verify", "push", "pull", "audit", "dataset", "finetune", "monitor"} <= verbs
    work = tmp_path / "clone"
    work.mkdir()
    for name in ("src", "docs"):
        (work / name).symlink_to(ROOT / name)
    registry = start_registry(tmp_path / "registry")
    server = start_server(tmp_path / "zoo-a", tmp_path / "server.log", ready_seconds=900)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env.update({"OPENZOO_HOME": str(server.home), "OPENZOO_HOST": server.host,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join(str(Path(p).resolve()) for p in
                                              env.get("PYTHONPATH", "").split(os.pathsep) if p)})
    try:
        for step in steps:
            command = step.command.replace(SERVER_PORT, server.host).replace(REGISTRY_PORT, registry.host)
            result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=work, env=env, text=True,
                                    capture_output=True, timeout=2400, check=False)
            said = f"$ {command}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
            assert result.returncode == 0, said
            output = (result.stdout + "\n" + result.stderr).splitlines()
            for line in step.expected:
                if line != ANY:
                    assert matches(line, output), f"README expects {line!r}\n{said}"
    finally:
        stop_server(server)
        stop_registry(registry)
