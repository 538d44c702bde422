"""Ollama wire format ⇄ domain: request bodies, and pure translators for every response shape.

Field names, defaults and omissions follow Ollama's ``api/types.go`` so that the official Python and
JavaScript clients parse every reply (they treat ``response``, ``message``, ``models``, ``embeddings``
and ``model_info`` as required, and durations as integer nanoseconds).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from openzoo.config import parse_duration
from openzoo.events import Done, Progress, TextChunk, TokenLogprob
from openzoo.inference import KeepAlive
from openzoo.show import ModelInfo


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _model_field() -> Any:
    return Field("", description="Model name, e.g. gemma3:270m")


class InferenceBody(_Body):
    """The fields ``/api/generate`` and ``/api/chat`` share (names and defaults as in Ollama's types)."""

    model: str = _model_field()
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def want_logprobs(self) -> bool:
        """Logprobs go on the wire when asked for directly or through ``top_logprobs``."""
        return self.logprobs or self.top_logprobs > 0


class GenerateBody(InferenceBody):
    prompt: str = ""
    suffix: str | None = None
    images: list[str] | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False


class ChatBody(InferenceBody):
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class EmbedBody(_Body):
    model: str = _model_field()
    input: str | list[str] = Field(default_factory=list)
    truncate: bool = True
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingsBody(_Body):
    model: str = _model_field()
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class ModelBody(_Body):
    model: str = ""
    name: str = ""  # legacy
    verbose: bool = False
    insecure: bool = False
    stream: bool = True

    @property
    def target(self) -> str:
        return self.model or self.name


class CopyBody(_Body):
    source: str
    destination: str


class CreateBody(_Body):
    model: str = ""
    name: str = ""
    from_: str | None = Field(None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    license: str | list[str] | None = None
    system: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str | None = None
    imatrix: str | None = None  # openzoo: with quantize, "builtin" or a dataset to compute an importance matrix from
    heldout: str | None = None  # openzoo: with quantize, a dataset to measure the loss on (default: built-in text)
    heldout_tokens: int | None = None  # openzoo: with quantize, how many held-out tokens to measure on
    stream: bool = True
    modelfile: str | None = None  # legacy


def keep_alive(value: float | str | None) -> KeepAlive:
    """Absent → the server default; otherwise seconds (``None`` for ever)."""
    return "default" if value is None else parse_duration(value)


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def rfc3339(moment: datetime | float) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def _logprob_item(lp: TokenLogprob, with_top: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes)}
    if with_top:
        item["top_logprobs"] = [{"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in lp.top]
    return item


def logprobs(chunk: TextChunk, top: int) -> list[dict[str, Any]]:
    return [_logprob_item(lp, top > 0) for lp in chunk.logprobs]


def metrics(done: Done) -> dict[str, Any]:
    """Final-chunk timings in nanoseconds; zero metrics omitted, as Ollama does."""
    values = {"total_duration": done.total_ns, "load_duration": done.load_ns,
              "prompt_eval_count": done.prompt_tokens, "prompt_eval_duration": done.prompt_eval_ns,
              "eval_count": done.completion_tokens, "eval_duration": done.eval_ns}
    return {k: int(v) for k, v in values.items() if v}


def generate_chunk(model: str, chunk: TextChunk, top_logprobs: int, want_logprobs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": now_rfc3339(), "response": chunk.text, "done": False}
    if want_logprobs:
        out["logprobs"] = logprobs(chunk, top_logprobs)
    return out


def generate_done(model: str, done: Done, *, response: str = "", raw: bool = False,
                  all_logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": now_rfc3339(), "response": response, "done": True,
                           "done_reason": done.reason}
    if not raw and done.context:
        out["context"] = list(done.context)
    out.update(metrics(done))
    if all_logprobs is not None:
        out["logprobs"] = all_logprobs
    return out


def tool_calls(done: Done) -> list[dict[str, Any]]:
    return [{"id": c.id, "function": {"index": c.index, "name": c.name, "arguments": c.arguments}}
            for c in done.tool_calls]


def chat_chunk(model: str, chunk: TextChunk, top_logprobs: int, want_logprobs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": now_rfc3339(),
                           "message": {"role": "assistant", "content": chunk.text}, "done": False}
    if want_logprobs:
        out["logprobs"] = logprobs(chunk, top_logprobs)
    return out


def chat_done(model: str, done: Done, *, content: str = "",
              all_logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if done.tool_calls:
        message["tool_calls"] = tool_calls(done)
    out: dict[str, Any] = {"model": model, "created_at": now_rfc3339(), "message": message, "done": True,
                           "done_reason": done.reason}
    out.update(metrics(done))
    if all_logprobs is not None:
        out["logprobs"] = all_logprobs
    return out


def progress(event: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"status": event.status}
    if event.digest:
        out["digest"] = event.digest
    if event.total is not None:
        out["total"] = event.total
    if event.completed:
        out["completed"] = event.completed
    return out


def b64_float32(vector: list[float]) -> str:
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def show_response(info: ModelInfo) -> dict[str, Any]:
    """``POST /api/show``'s body for a model (keys absent where Ollama leaves them out)."""
    out: dict[str, Any] = {
        "modelfile": info.modelfile,
        "parameters": info.parameters,
        "template": info.template,
        "details": info.details.to_json(),
        "model_info": info.model_info,
        "capabilities": list(info.capabilities),
        "model_kind": info.model_kind,  # openzoo extension: "base" or "chat"
        "modified_at": rfc3339(info.modified_at),
    }
    if info.system:
        out["system"] = info.system
    if info.license:
        out["license"] = info.license
    if info.tensors is not None:
        out["tensors"] = [{"name": t.name, "type": t.type, "shape": list(t.shape)} for t in info.tensors]
    if info.quantization is not None:
        out["quantization"] = info.quantization
    return out


# --- reply shapes, as /openapi.json describes them (the translators above build the objects) -----


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class VersionReply(_Reply):
    version: str


class GenerateReply(_Reply):
    """A ``/api/generate`` reply (or one NDJSON line of its stream; the last has ``done: true``)."""

    model: str
    created_at: str
    response: str
    done: bool
    done_reason: str | None = None
    context: list[int] | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    logprobs: list[dict[str, Any]] | None = None


class ChatMessage(_Reply):
    role: str
    content: str
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatReply(_Reply):
    """A ``/api/chat`` reply (or one NDJSON line of its stream; the last has ``done: true``)."""

    model: str
    created_at: str
    message: ChatMessage
    done: bool
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    logprobs: list[dict[str, Any]] | None = None


class EmbedReply(_Reply):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingReply(_Reply):
    embedding: list[float]


class ModelEntry(_Reply):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: dict[str, Any]


class TagsReply(_Reply):
    models: list[ModelEntry]


class ShowReply(_Reply):
    modelfile: str
    parameters: str
    template: str
    details: dict[str, Any]
    model_info: dict[str, Any]
    capabilities: list[str]


class RunningEntry(_Reply):
    name: str
    model: str
    size: int
    digest: str
    details: dict[str, Any]
    expires_at: str
    size_vram: int
    context_length: int


class PsReply(_Reply):
    models: list[RunningEntry]


class ProgressReply(_Reply):
    """A progress line of ``/api/pull``, ``/api/push``, ``/api/create`` (the last: ``status: success``)."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
