"""Differential-privacy settings of a federated fine-tune are refused up front when they are wrong.

Flower's DP wrappers raise only inside the ServerApp, after the SuperLink and SuperNodes are up, and a
noise multiplier of zero or less would quietly run without any noise, so openzoo checks the values
before anything starts. The DP run itself is in ``tests/integration/test_finetune.py``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from openzoo import config
from openzoo.errors import InvalidRequest
from openzoo.finetune.federated import FederatedRequest, check_dp, finetune_federated
from openzoo.services import Services


@pytest.mark.parametrize(("noise", "clip", "param", "text"), [
    (-0.5, 1.0, "dp_noise", "noise multiplier must be a positive number (got -0.5)"),
    (0.0, 1.0, "dp_noise", "noise multiplier must be a positive number (got 0.0)"),
    (math.nan, 1.0, "dp_noise", "noise multiplier"),
    (0.1, 0.0, "dp_clip", "clipping norm must be a positive number (got 0.0)"),
    (0.1, -1.0, "dp_clip", "clipping norm"),
    (None, math.inf, "dp_clip", "clipping norm"),
])
def test_bad_dp_values_are_refused(noise: float | None, clip: float, param: str, text: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(text)) as info:
        check_dp(noise, clip)
    assert info.value.param == param


def test_good_dp_values_pass() -> None:
    check_dp(None, 1.0)
    check_dp(0.5, 2.0)


def test_federated_run_refuses_bad_dp_before_starting_anything(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n')
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        with pytest.raises(InvalidRequest, match="noise multiplier"):
            next(finetune_federated(services, FederatedRequest(base="gemma3:270m", data=data, name="me/x",
                                                               nodes=2, dp_noise=-1.0)))
        assert not (home / "finetune").exists()
    finally:
        services.close()


def test_cli_reports_bad_dp_as_one_line(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n')
    env = {**os.environ, "OPENZOO_HOME": str(home)}
    res = subprocess.run([sys.executable, "-m", "openzoo", "finetune", "gemma3:270m", "--data", str(data), "--name",
                          "me/x", "--federated", "--nodes", "2", "--dp-noise", "0.1", "--dp-clip", "0"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("Error: the DP clipping norm must be a positive number")


def test_cli_refuses_dp_noise_without_federated(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n')
    env = {**os.environ, "OPENZOO_HOME": str(home)}
    res = subprocess.run([sys.executable, "-m", "openzoo", "finetune", "gemma3:270m", "--data", str(data), "--name",
                          "me/x", "--dp-noise", "0.1"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "--dp-noise applies to federated training only" in res.stderr.strip().splitlines()[-1]
    assert not (home / "finetune").exists()
