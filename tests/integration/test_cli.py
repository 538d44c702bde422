"""The ``openzoo`` command as a person uses it: real processes, a real store, the real model."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from openzoo.models import DEFAULT_MODEL
from support.cli import openzoo
from support.gguf_files import write_gguf
from support.server import Server


def test_errors_are_one_line_with_next_step(tmp_path: Path) -> None:
    result = openzoo(tmp_path, "show", "missing:model")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert 'model "missing:model" not found' in lines[0]
    assert "openzoo pull" in lines[0]
    result = openzoo(tmp_path, "import", str(tmp_path / "none.gguf"), "--name", "x")
    assert result.returncode == 1 and "no such file" in result.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    result = openzoo(tmp_path, "import", str(bad), "--name", "x")
    assert result.returncode == 1 and "invalid GGUF file" in result.stderr
    assert openzoo(tmp_path, "list").stdout.strip().splitlines() == ["NAME    ID    SIZE    MODIFIED"]
    result = openzoo(tmp_path, "pull", "other:1b")
    assert result.returncode == 1 and "not supported yet" in result.stderr


def test_import_create_show_cp_rm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gguf = write_gguf(tmp_path / "tiny.gguf")
    assert openzoo(home, "import", str(gguf), "--name", "me/tiny:v1").returncode == 0
    (tmp_path / "Modelfile").write_text(
        'FROM ./tiny.gguf\nPARAMETER temperature 0.2\nPARAMETER stop "<|end|>"\n'
        'TEMPLATE """{{ if .System }}<|system|>{{ .System }}<|end|>{{ end }}'
        '<|user|>{{ .Prompt }}<|end|><|assistant|>"""\n'
        'SYSTEM You are terse.\nLICENSE """Apache-2.0"""\n')
    result = openzoo(home, "create", "me/tiny:chat", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 0, result.stderr
    assert "success" in result.stderr
    shown = openzoo(home, "show", "me/tiny:chat", "--modelfile").stdout
    assert "PARAMETER temperature 0.2" in shown and "SYSTEM" in shown and "TEMPLATE" in shown
    assert openzoo(home, "show", "me/tiny:chat", "--system").stdout.strip() == "You are terse."
    assert openzoo(home, "show", "me/tiny:chat", "--license").stdout.strip() == "Apache-2.0"
    assert "<|user|>" in openzoo(home, "show", "me/tiny:chat", "--template").stdout
    assert openzoo(home, "cp", "me/tiny:chat", "me/copy").returncode == 0
    listing = openzoo(home, "list").stdout
    assert "me/tiny:v1" in listing and "me/tiny:chat" in listing and "me/copy:latest" in listing
    assert openzoo(home, "rm", "me/tiny:v1", "me/tiny:chat", "me/copy").returncode == 0
    assert openzoo(home, "list").stdout.strip().splitlines() == ["NAME    ID    SIZE    MODIFIED"]
    assert [p.name for p in (home / "blobs").iterdir()] == []  # nothing left behind
    assert openzoo(home, "verify", "--store").returncode == 0


def test_bad_modelfile_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM gemma3:270m\nPARAMETER temperature warm\n")
    result = openzoo(tmp_path, "create", "x", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 1
    assert "line 2" in result.stderr


@pytest.fixture(scope="module")
def short_model(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default model with num_predict 8, so that runs of a base model (which rarely stops) are short.

    Removed afterwards: the model home is shared by the whole session.
    """
    modelfile = tmp_path_factory.mktemp("short") / "Modelfile"
    modelfile.write_text(f"FROM {DEFAULT_MODEL}\nPARAMETER num_predict 8\nPARAMETER temperature 0\n")
    assert openzoo(model_home, "create", "pytest/short", "-f", str(modelfile)).returncode == 0
    yield "pytest/short"
    assert openzoo(model_home, "rm", "pytest/short").returncode == 0


def test_run_in_process_with_prompt(model_home: Path, short_model: str) -> None:
    result = openzoo(model_home, "run", short_model, "Count:", "--verbose", "--keepalive", "0", stdin="")
    assert result.returncode == 0, result.stderr
    assert "eval count" in result.stderr and "eval rate" in result.stderr
    assert result.stdout.endswith("\n")


def test_run_against_server_and_ps_stop(server: Server, short_model: str) -> None:
    home = server.home
    result = openzoo(home, "run", short_model, "Hello", host=server.host)
    assert result.returncode == 0, result.stderr
    ps = openzoo(home, "ps", host=server.host).stdout
    assert short_model in ps and "100% CPU" in ps
    assert openzoo(home, "stop", short_model, host=server.host).returncode == 0
    assert short_model not in openzoo(home, "ps", host=server.host).stdout


def test_run_interactive(model_home: Path, short_model: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env.update({"OPENZOO_HOME": str(model_home), "OPENZOO_HOST": "127.0.0.1:1", "OPENZOO_CONTEXT_LENGTH": "1024"})
    child = pexpect.spawn(sys.executable, ["-m", "openzoo", "run", short_model], env=env, encoding="utf-8",
                          timeout=120)
    try:
        child.expect_exact(">>> ")
        child.sendline("/set parameter num_predict 5")
        child.expect_exact("Set parameter 'num_predict' to '5'")
        child.expect_exact(">>> ")
        child.sendline('"""first line')
        child.expect_exact("... ")
        child.sendline('second line"""')
        child.expect_exact(">>> ")
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize("args", [["run", "gemma3:270m", "--format", "yaml"], ["verify"]])
def test_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = openzoo(tmp_path, *args)
    assert result.returncode != 0
    assert result.stderr.strip().startswith("Error:")
