"""Ollama ``options`` → runtime settings: one typed translation for every surface.

Types follow Ollama: integers accept any JSON number (truncated), floats any number, ``stop`` a list of
strings. Wrong types are a 400 naming the option; unknown options are ignored with a logged warning
(as Ollama does), since clients send many that only matter to other engines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from openzoo.errors import InvalidRequest
from openzoo.runtime.base import SamplingParams

log = logging.getLogger("openzoo.options")

_INT = {"top_k", "repeat_last_n", "seed", "num_predict", "num_ctx", "num_keep", "num_batch", "num_gpu",
        "main_gpu", "num_thread", "mirostat", "max_tokens"}
_FLOAT = {"temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
          "frequency_penalty", "tfs_z", "mirostat_tau", "mirostat_eta"}
_BOOL = {"numa", "low_vram", "use_mmap", "use_mlock", "penalize_newline", "f16_kv", "logits_all",
         "vocab_only", "embedding_only"}
# Accepted for compatibility, without effect on the llama.cpp CPU engine.
IGNORED = {"num_batch", "num_gpu", "main_gpu", "num_thread", "mirostat", "mirostat_tau", "mirostat_eta",
           "tfs_z", "numa", "low_vram", "use_mmap", "use_mlock", "penalize_newline", "f16_kv",
           "logits_all", "vocab_only", "embedding_only"}
KNOWN = _INT | _FLOAT | _BOOL | {"stop"}


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything a request's options decide, with Ollama's defaults."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    num_predict: int = -1
    num_ctx: int | None = None
    num_keep: int = 4
    stop: tuple[str, ...] = ()


def _typed(name: str, value: Any) -> Any:
    if name in _INT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f'option "{name}" must be of type integer', param=name)
        return int(value)
    if name in _FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f'option "{name}" must be of type number', param=name)
        return float(value)
    if name in _BOOL:
        if not isinstance(value, bool):
            raise InvalidRequest(f'option "{name}" must be of type boolean', param=name)
        return value
    if name == "stop":
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InvalidRequest('option "stop" must be an array of strings', param="stop")
        return tuple(value)
    return value


def merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers win: model parameters, then request options."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            merged.update(layer)
    return merged


def parse(options: Mapping[str, Any] | None) -> RunOptions:
    """Validate and translate an options mapping; raise :class:`InvalidRequest` on a wrong type."""
    if options is None:
        return RunOptions()
    if not isinstance(options, Mapping):
        raise InvalidRequest('"options" must be an object', param="options")
    values: dict[str, Any] = {}
    for name, raw in options.items():
        if raw is None:
            continue
        if name not in KNOWN:
            log.warning("invalid option provided: %s", name)
            continue
        values[name] = _typed(name, raw)
    for name in values.keys() & IGNORED:
        log.debug("option %s has no effect on this engine", name)
    sampling = SamplingParams()
    sampling_fields = {f for f in SamplingParams.__dataclass_fields__ if f in values}
    if sampling_fields:
        sampling = replace(sampling, **{f: values[f] for f in sampling_fields})
    num_predict = values.get("num_predict", values.get("max_tokens", -1))
    num_ctx = values.get("num_ctx")
    if num_ctx is not None and num_ctx < 1:
        raise InvalidRequest('option "num_ctx" must be positive', param="num_ctx")
    if sampling.top_k < 0:
        raise InvalidRequest('option "top_k" must not be negative', param="top_k")
    return RunOptions(sampling=sampling, num_predict=num_predict, num_ctx=num_ctx,
                      num_keep=values.get("num_keep", 4), stop=values.get("stop", ()))


def parameters_text(parameters: Mapping[str, Any]) -> str:
    """Ollama's ``show`` ``parameters`` text: ``name<spaces>value`` lines, one per stop string."""
    lines = []
    for name in sorted(parameters):
        value = parameters[name]
        for item in value if isinstance(value, list | tuple) else [value]:
            text = f'"{item}"' if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
            lines.append(f"{name:<30} {text}")
    return "\n".join(lines)
