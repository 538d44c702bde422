"""Issue 18's first minute: the default model is a base model, answered as one, and briefly.

No timings here (the bar of 15 s is a bench matter): the answer's token count is bounded by the model's
own parameters, and no line of it repeats more than twice — on the CLI one-shot path (in-process and
through a server) and on the OpenAI chat endpoint called without ``max_tokens``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openzoo.models import DEFAULT_MODEL, DEFAULT_MODEL_PARAMETERS
from support.cli import openzoo
from support.server import Server

README = Path(__file__).resolve().parents[2] / "README.md"
LIMIT = int(DEFAULT_MODEL_PARAMETERS["num_predict"])


def readme_prompt() -> str:
    """The prompt of the README's first ``openzoo run`` example."""
    found = re.search(r'openzoo run gemma3:270m "([^"]+)"', README.read_text())
    assert found, "the README shows an 'openzoo run gemma3:270m \"PROMPT\"' example"
    return found.group(1)


def max_repeats(text: str) -> int:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return max(Counter(lines).values(), default=0)


def eval_count(stderr: str) -> int:
    found = re.search(r"eval count:\s+(\d+) token", stderr.split("prompt eval count")[-1])
    assert found, stderr
    return int(found.group(1))


def test_one_shot_run_is_a_short_completion(model_home: Path) -> None:
    result = openzoo(model_home, "run", DEFAULT_MODEL, readme_prompt(), "--verbose", "--keepalive", "0")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "base model" in line]
    assert len(notes) == 1 and "openzoo finetune" in notes[0] and "openzoo import" in notes[0]
    assert 0 < eval_count(result.stderr) <= LIMIT
    assert max_repeats(result.stdout) <= 2, result.stdout


def test_run_options_chat_and_max_tokens(server: Server) -> None:
    result = openzoo(server.home, "run", DEFAULT_MODEL, "Hi", "--chat", "--max-tokens", "5", "--verbose",
                     host=server.host)
    assert result.returncode == 0, result.stderr
    assert "base model" not in result.stderr  # asked for the chat template: no note
    assert 0 < eval_count(result.stderr) <= 5
    refused = openzoo(server.home, "run", DEFAULT_MODEL, "Hi", "--system", "Be brief.", host=server.host)
    assert refused.returncode == 1 and "--chat" in refused.stderr


def test_show_says_base_and_carries_the_parameters(server: Server) -> None:
    shown = httpx.post(server.url + "/api/show", json={"model": DEFAULT_MODEL}, timeout=60).json()
    assert shown["model_kind"] == "base"
    assert re.search(rf"^num_predict\s+{LIMIT}$", shown["parameters"], re.M)
    for name in ("num_predict", "repeat_penalty", "repeat_last_n", "temperature"):
        assert re.search(rf"^{name}\s", shown["parameters"], re.M), shown["parameters"]


@pytest.fixture(scope="module")
def small(server: Server) -> Iterator[str]:
    """The default model with ``num_predict 6``, so the checks below are quick on a busy machine (the
    default model's own 128 is checked through ``/api/show`` above). Removed afterwards: the model home
    is shared by the whole session."""
    name = "pytest/first-minute:short"
    created = httpx.post(server.url + "/api/create", json={"model": name, "from": DEFAULT_MODEL, "stream": False,
                                                           "parameters": {"num_predict": 6}}, timeout=120)
    assert created.status_code == 200, created.text
    yield name
    assert httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=60).status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_a_request_without_a_limit_gets_the_models(server: Server, small: str, path: str) -> None:
    """A model's num_predict applies where a request sets no limit; finish reasons stay the APIs' own."""
    body = {"model": small, "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    reply = httpx.post(server.url + path, json=body, timeout=600).json()
    if path.startswith("/v1"):
        assert 0 < reply["usage"]["completion_tokens"] <= 6
        assert reply["choices"][0]["finish_reason"] in {"stop", "length"}
    else:
        assert 0 < reply["eval_count"] <= 6 and reply["done_reason"] in {"stop", "length"}
    # ...and a request's own limit still wins
    own = httpx.post(server.url + "/api/generate", json={"model": small, "prompt": "Hi", "stream": False,
                                                         "options": {"num_predict": 9, "stop": []}},
                     timeout=600).json()
    assert 6 < own["eval_count"] <= 9 or own["done_reason"] == "stop"
