"""Issue 18's first minute: the default model is a base model, answered as one, and briefly.

No timings here (the bar of 15 s is a bench matter): the answer's token count is bounded by the model's
own parameters, and no line of it repeats more than twice — on the CLI one-shot path (in-process and
through a server) and on the OpenAI chat endpoint called without ``max_tokens``.
"""

from __future__ import annotations

import re
from collections import Counter
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
    for name in ("num_predict", "stop", "temperature", "top_k", "top_p"):
        assert re.search(rf"^{name}\s", shown["parameters"], re.M), shown["parameters"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_a_request_without_a_limit_gets_the_models(server: Server, path: str) -> None:
    """The model's num_predict applies where the request sets none; the finish reasons stay the APIs' own."""
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    reply = httpx.post(server.url + path, json=body, timeout=300).json()
    if path.startswith("/v1"):
        assert 0 < reply["usage"]["completion_tokens"] <= LIMIT
        assert reply["choices"][0]["finish_reason"] in {"stop", "length"}
    else:
        assert 0 < reply["eval_count"] <= LIMIT and reply["done_reason"] in {"stop", "length"}
    # ...and a request's own limit still wins
    own = httpx.post(server.url + "/api/generate", json={"model": DEFAULT_MODEL, "prompt": "Hi", "stream": False,
                                                         "options": {"num_predict": LIMIT + 8, "stop": []}},
                     timeout=300).json()
    assert LIMIT < own["eval_count"] <= LIMIT + 8 or own["done_reason"] == "stop"
