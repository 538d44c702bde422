"""Generation, chat and embeddings: API-neutral requests in, domain events out.

This is the one code path for every surface: ``/api/generate``, ``/api/chat``, ``/v1/completions``,
``/v1/chat/completions``, the CLI's ``run`` and the audit scorer all build one of these requests. The
request is checked, the model resolved and loaded *before* a :class:`Generation` is returned, so that
surfaces can answer errors with a real status before the first byte is sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from openzoo.errors import EngineError, InvalidRequest, NotSupported, OpenzooError
from openzoo.events import Done, Event, Failure, TextChunk, ToolCall
from openzoo.formats import grammar as grammars
from openzoo.formats.templates import ChatTemplate
from openzoo.formats.tools import extract_tool_calls, tools_instruction
from openzoo.metrics import Metrics, ReplicaInfo
from openzoo.models import Models, ModelSpec
from openzoo.options import RunOptions, merge, parse
from openzoo.runtime.base import GenerationHandle, GenerationRequest, LoadedModel
from openzoo.runtime.scheduler import LoadedInfo, LoadSpec, Scheduler

KeepAlive = float | None | Literal["default"]
Format = str | dict[str, Any] | None


@dataclass(slots=True)
class CompletionRequest:
    """A prompt completion (``/api/generate``, ``/v1/completions``).

    ``prompt`` as a list of token ids is used verbatim (no template, no BOS), as lm-eval expects; a text
    prompt gets the model's BOS when ``add_special`` and the GGUF says ``add_bos_token``.
    ``prompt_logprobs`` (k) asks for the log-probability of every prompt token with k alternatives;
    ``prompt_logprobs_from`` limits it to the positions from there on (see ``GenerationRequest``).
    """

    model: str
    prompt: str | list[int] = ""
    system: str | None = None
    template: str | None = None
    suffix: str | None = None
    context: list[int] | None = None
    raw: bool = False
    format: Format = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = "default"
    logprobs: bool = False
    top_logprobs: int = 0
    prompt_logprobs: int | None = None
    prompt_logprobs_from: int = 1
    images: list[str] | None = None
    think: bool | str | None = None
    add_special: bool = True
    logit_bias: dict[int, float] | None = None


@dataclass(slots=True)
class ChatRequest:
    """A chat turn (``/api/chat``, ``/v1/chat/completions``)."""

    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    format: Format = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = "default"
    logprobs: bool = False
    top_logprobs: int = 0
    think: bool | str | None = None
    logit_bias: dict[int, float] | None = None


@dataclass(frozen=True, slots=True)
class Embeddings:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int
    total_ns: int
    load_ns: int


class TokenText(Protocol):
    """What a surface may ask of the model behind a started generation: the text of token ids."""

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def token_bytes(self, token: int) -> bytes: ...


class GenerationStream(Protocol):
    """A started generation as surfaces use it: events to iterate, ``close`` to cancel.

    :class:`Generation` runs on this process's engine; ``openzoo serve --replicas`` answers with one
    that streams the same events from a Ray Serve replica (``scale/remote.py``).
    """

    @property
    def model_name(self) -> str: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def model(self) -> TokenText: ...

    def __iter__(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


class InferenceService(Protocol):
    """The inference seam every surface calls (``services.inference``).

    :class:`Inference` runs requests on this process's scheduler; ``scale.remote.ReplicatedInference``
    hands the same requests to Ray Serve replicas, each running an :class:`Inference` of its own, so
    handlers, the CLI and audits have one code path whichever runs the engine.
    """

    @property
    def models(self) -> Models:
        """The store's models, resolved where requests arrive."""
        ...

    def completion(self, req: CompletionRequest) -> GenerationStream: ...

    def chat(self, req: ChatRequest) -> GenerationStream: ...

    def load(self, model: str, keep_alive: KeepAlive = "default",
             options: dict[str, Any] | None = None) -> tuple[ModelSpec, int]: ...

    def embed(self, model: str, inputs: Sequence[str], *, truncate: bool = True, normalize: bool = True,
              options: dict[str, Any] | None = None, keep_alive: KeepAlive = "default",
              dimensions: int | None = None) -> Embeddings: ...

    def cold_batch(self, model: str) -> int: ...

    def tokenize(self, model: str, text: str, *, add_special: bool = False) -> list[int]: ...

    def tokenizer_info(self, model: str) -> dict[str, Any]: ...

    def detokenize(self, model: str, tokens: Sequence[int]) -> str: ...

    def loaded(self) -> list[LoadedInfo]:
        """Models in memory, one entry per model (with the replicas holding it, when replicated)."""
        ...

    def unload(self, manifest_digest: str) -> bool:
        """Unload a model wherever no request uses it; True if it was loaded anywhere."""
        ...

    def replicas(self) -> list[ReplicaInfo]: ...


class Generation:
    """A started generation holding its model until iteration ends or :meth:`close` is called.

    Iterate for events (blocking; run it in a worker thread from async code); ``close`` cancels the
    engine request, so a client that disconnects frees its slot at the next decode step.
    """

    def __init__(self, spec: ModelSpec, lease: contextlib.AbstractContextManager[tuple[LoadedModel, int]],
                 model: LoadedModel, load_ns: int, request: GenerationRequest, *,
                 collect_tools: bool = False, started: int | None = None, metrics: Metrics | None = None,
                 tool_names: frozenset[str] | None = None) -> None:
        self.spec = spec
        self.model_name = spec.name.display
        self._lease = lease
        self._model = model
        self._load_ns = load_ns
        self._request = request
        self._collect_tools = collect_tools
        self._tool_names = tool_names
        self._started = started or time.perf_counter_ns()
        self._handle: GenerationHandle | None = None
        self._closed = False
        self._metrics = metrics or Metrics()
        self.prompt_tokens = len(request.prompt)

    @property
    def model(self) -> LoadedModel:
        return self._model

    def start(self) -> None:
        """Submit to the engine; raises (e.g. :class:`ServerBusy`) before any event is produced."""
        try:
            self._handle = self._model.submit(self._request)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Event]:
        if self._handle is None:
            self.start()
        assert self._handle is not None
        pieces: list[TextChunk] = []
        try:
            for event in self._metrics.observe(self._handle, self._started):
                if isinstance(event, TextChunk):
                    if self._collect_tools:
                        pieces.append(event)
                        continue
                    yield event
                elif isinstance(event, Done):
                    yield from self._finish(event, pieces)
                    return
                else:
                    yield event
                    return
        except OpenzooError as exc:
            yield Failure(exc)
        except Exception as exc:  # the engine thread must never take a stream down silently
            yield Failure(EngineError(f"generation failed: {exc}"))
        finally:
            self.close()

    def _finish(self, done: Done, pieces: list[TextChunk]) -> Iterator[Event]:
        extra: dict[str, Any] = {"load_ns": self._load_ns,
                                 "total_ns": time.perf_counter_ns() - self._started}
        if self._collect_tools:
            text = "".join(p.text for p in pieces)
            calls = extract_tool_calls(text, tool_names=self._tool_names).calls
            if calls:
                extra["tool_calls"] = tuple(ToolCall(call.name, dict(call.arguments), id=f"call_{i}", index=i)
                                            for i, call in enumerate(calls))
            elif pieces:
                yield TextChunk(text, tuple(t for p in pieces for t in p.token_ids),
                                tuple(lp for p in pieces for lp in p.logprobs))
        fields = {f: getattr(done, f) for f in Done.__dataclass_fields__}
        fields.update(extra)
        yield Done(**fields)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
        self._lease.__exit__(None, None, None)


class Inference:
    """Turns requests into engine work on the scheduler's loaded models."""

    def __init__(self, models: Models, scheduler: Scheduler, *, default_num_ctx: int = 4096,
                 metrics: Metrics | None = None) -> None:
        self.models = models
        self.scheduler = scheduler
        self.default_num_ctx = default_num_ctx
        self.metrics = metrics or Metrics()

    # helpers

    def _load_spec(self, spec: ModelSpec, opts: RunOptions) -> LoadSpec:
        n_ctx = opts.num_ctx or self.default_num_ctx
        trained = spec.config.get("context_length")
        if isinstance(trained, int) and trained > 0:
            n_ctx = min(n_ctx, trained)
        return LoadSpec(spec.digest, spec.name.display, spec.weights, n_ctx,
                        tuple((path, 1.0) for path in spec.adapters), spec.details.to_json(), spec.size)

    def _lease(self, spec: ModelSpec, opts: RunOptions,
               keep_alive: KeepAlive) -> tuple[contextlib.AbstractContextManager[tuple[LoadedModel, int]],
                                                LoadedModel, int]:
        lease = self.scheduler.use(self._load_spec(spec, opts), keep_alive)
        model, load_ns = lease.__enter__()
        return lease, model, load_ns

    @staticmethod
    def _grammar(fmt: Format) -> str | None:
        if fmt is None or fmt == "":
            return None
        if fmt == "json":
            return grammars.json_grammar()
        if isinstance(fmt, dict):
            return grammars.schema_grammar(fmt)
        raise InvalidRequest(f'invalid format "{fmt}": use "json" or a JSON schema object', param="format")

    @staticmethod
    def _tokens(model: LoadedModel, text: str, add_special: bool = True) -> list[int]:
        tokens = model.tokenize(text, add_special=add_special, parse_special=True)
        bos = model.bos_token_id
        if bos is not None and len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]  # the template already wrote the BOS token
        return tokens

    @staticmethod
    def _fit(tokens: list[int], n_ctx: int, opts: RunOptions) -> list[int]:
        """Keep a prompt inside the context: the first ``num_keep`` tokens and the most recent rest."""
        reserve = opts.num_predict if 0 < opts.num_predict < n_ctx // 2 else min(256, n_ctx // 4)
        limit = max(1, n_ctx - reserve)
        if len(tokens) <= limit:
            return tokens
        keep = max(0, min(opts.num_keep, limit // 2))
        return tokens[:keep] + tokens[len(tokens) - (limit - keep):]

    def _engine_request(self, model: LoadedModel, prompt: list[int], opts: RunOptions, *, fmt: Format,
                        logprobs: bool, top_logprobs: int, prompt_logprobs: int | None = None,
                        prompt_logprobs_from: int = 1, template: ChatTemplate | None = None,
                        logit_bias: dict[int, float] | None = None) -> GenerationRequest:
        if not 0 <= top_logprobs <= 20:
            raise InvalidRequest("top_logprobs must be between 0 and 20", param="top_logprobs")
        stop = opts.stop + tuple(s for s in (template.stop if template else ()) if s not in opts.stop)
        sampling = opts.sampling
        if logit_bias:
            if any(not 0 <= token < model.n_vocab for token in logit_bias):
                raise InvalidRequest(f"logit_bias token ids must be between 0 and {model.n_vocab - 1}",
                                     param="logit_bias")
            sampling = replace(sampling, logit_bias=tuple(sorted(logit_bias.items())))
        return GenerationRequest(tuple(prompt), sampling, max_tokens=opts.num_predict, stop=stop,
                                 grammar=self._grammar(fmt), logprobs=logprobs or top_logprobs > 0,
                                 top_logprobs=top_logprobs, prompt_logprobs=prompt_logprobs,
                                 prompt_logprobs_from=prompt_logprobs_from)

    @staticmethod
    def _check_media(spec: ModelSpec, images: Sequence[Any] | None) -> None:
        if images:
            raise NotSupported(f"{spec.name.display} does not support vision")

    # requests

    def completion(self, req: CompletionRequest) -> Generation:
        """Check, load and submit a completion; errors raise before any event."""
        started = time.perf_counter_ns()
        spec = self.models.resolve(req.model)
        if req.raw and (req.template or req.system or req.context):
            raise InvalidRequest("raw mode does not support template, system, or context")
        self._check_media(spec, req.images)
        opts = parse(merge(spec.parameters, req.options))
        template = None if req.raw or isinstance(req.prompt, list) else self.models.template_for(spec, req.template)
        if req.suffix and (template is None or not template.supports_insert):
            raise NotSupported(f"{spec.name.display} does not support insert")
        lease, model, load_ns = self._lease(spec, opts, req.keep_alive)
        try:
            if isinstance(req.prompt, list):
                tokens = list(req.prompt)
                if any(not 0 <= t < model.n_vocab for t in tokens):
                    raise InvalidRequest(f"prompt token ids must be between 0 and {model.n_vocab - 1}",
                                         param="prompt")
            elif template is None:
                tokens = self._tokens(model, req.prompt, req.add_special)
            else:
                system = req.system if req.system is not None else spec.system
                tokens = self._tokens(model, template.render_prompt(system, req.prompt, req.suffix))
            if req.context:
                tokens = list(req.context) + tokens
            if req.prompt_logprobs is None:
                tokens = self._fit(tokens, model.n_ctx, opts)
            request = self._engine_request(model, tokens, opts, fmt=req.format, logprobs=req.logprobs,
                                           top_logprobs=req.top_logprobs, prompt_logprobs=req.prompt_logprobs,
                                           prompt_logprobs_from=req.prompt_logprobs_from, template=template,
                                           logit_bias=req.logit_bias)
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        self.metrics.request("completion")
        generation = Generation(spec, lease, model, load_ns, request, started=started, metrics=self.metrics)
        generation.start()
        return generation

    def chat(self, req: ChatRequest) -> Generation:
        started = time.perf_counter_ns()
        spec = self.models.resolve(req.model)
        for message in req.messages:
            self._check_media(spec, message.get("images") if isinstance(message, dict) else None)
        opts = parse(merge(spec.parameters, req.options))
        template = self.models.template_for(spec)
        tools = req.tools or None
        text = chat_prompt(spec, template, req.messages, tools)
        lease, model, load_ns = self._lease(spec, opts, req.keep_alive)
        try:
            tokens = self._fit(self._tokens(model, text), model.n_ctx, opts)
            request = self._engine_request(model, tokens, opts, fmt=req.format, logprobs=req.logprobs,
                                           top_logprobs=req.top_logprobs, template=template,
                                           logit_bias=req.logit_bias)
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        self.metrics.request("chat")
        names = frozenset(str((t.get("function") or {}).get("name", "")) for t in tools or [])
        generation = Generation(spec, lease, model, load_ns, request, collect_tools=bool(tools), started=started,
                                metrics=self.metrics, tool_names=names or None)
        generation.start()
        return generation

    def load(self, model: str, keep_alive: KeepAlive = "default",
             options: dict[str, Any] | None = None) -> tuple[ModelSpec, int]:
        """Load a model (an empty prompt) or, with ``keep_alive`` 0, unload it; return load time."""
        spec = self.models.resolve(model)
        if keep_alive == 0 or keep_alive == 0.0:
            self.scheduler.unload(spec.digest)
            return spec, 0
        opts = parse(merge(spec.parameters, options))
        return spec, self.scheduler.touch(self._load_spec(spec, opts), keep_alive)

    def embed(self, model: str, inputs: Sequence[str], *, truncate: bool = True, normalize: bool = True,
              options: dict[str, Any] | None = None, keep_alive: KeepAlive = "default",
              dimensions: int | None = None) -> Embeddings:
        started = time.perf_counter_ns()
        spec = self.models.resolve(model)
        opts = parse(merge(spec.parameters, options))
        with self.scheduler.use(self._load_spec(spec, opts), keep_alive) as (loaded, load_ns):
            if not inputs:
                return Embeddings(spec.name.display, [], 0, time.perf_counter_ns() - started, load_ns)
            vectors, count = loaded.embed(list(inputs), normalize=normalize, truncate=truncate)
        if dimensions is not None:
            if dimensions < 1 or (vectors and dimensions > len(vectors[0])):
                raise InvalidRequest(f"dimensions must be between 1 and {len(vectors[0]) if vectors else 0}",
                                     param="dimensions")
            vectors = [_renormalize(v[:dimensions]) if normalize else v[:dimensions] for v in vectors]
        return Embeddings(spec.name.display, vectors, count, time.perf_counter_ns() - started, load_ns)

    def _resident(self, spec: ModelSpec) -> contextlib.AbstractContextManager[tuple[LoadedModel, int]]:
        """``spec`` loaded with its own parameters, for calls that ask the model, not run a request."""
        return self.scheduler.use(self._load_spec(spec, parse(spec.parameters)))

    def cold_batch(self, model: str) -> int:
        """Forget ``model``'s cached prefixes and return how many requests it decodes together.

        Up to that many requests submitted now, with nothing else running, start from a cold cache
        and each gives exactly the tokens it gives alone (greedy); later ones would reuse slots whose
        freed cells running sequences can refill out of order (see the engine's "Limits"). Audits
        generate in such waves so that a report can be reproduced token for token.
        """
        spec = self.models.resolve(model)
        with self._resident(spec) as (loaded, _):
            loaded.clear_cache()
            return loaded.stats().total_slots

    def tokenize(self, model: str, text: str, *, add_special: bool = False) -> list[int]:
        spec = self.models.resolve(model)
        with self._resident(spec) as (loaded, _):
            return loaded.tokenize(text, add_special=add_special, parse_special=True)

    def tokenizer_info(self, model: str) -> dict[str, Any]:
        """Special tokens and chat template, in the shape lm-eval's tokenizer probe reads."""
        spec = self.models.resolve(model)
        template = self.models.template_for(spec)
        with self._resident(spec) as (loaded, _):
            def text(token: int | None) -> str | None:
                return None if token is None else loaded.token_bytes(token).decode("utf-8", "replace")

            eos = min(loaded.eos_token_ids) if loaded.eos_token_ids else None
            return {"model": spec.name.display, "bos_token": text(loaded.bos_token_id), "bos_token_id":
                    loaded.bos_token_id, "eos_token": text(eos), "eos_token_id": eos, "pad_token": text(eos),
                    "chat_template": template.source, "vocab_size": loaded.n_vocab,
                    "context_length": loaded.n_ctx}

    def detokenize(self, model: str, tokens: Sequence[int]) -> str:
        spec = self.models.resolve(model)
        with self._resident(spec) as (loaded, _):
            return loaded.detokenize(tokens)

    def token_bytes(self, model: str, tokens: Sequence[int]) -> list[bytes]:
        """The raw piece of each token (a replica answers a remote generation's ``model.token_bytes``)."""
        spec = self.models.resolve(model)
        with self._resident(spec) as (loaded, _):
            return [loaded.token_bytes(token) for token in tokens]

    def loaded(self) -> list[LoadedInfo]:
        return self.scheduler.loaded()

    def unload(self, manifest_digest: str) -> bool:
        return self.scheduler.unload(manifest_digest)

    def replicas(self) -> list[ReplicaInfo]:
        """This process as the one replica: its pid, host, generations started and in flight."""
        loaded = self.loaded()
        in_flight = sum(info.stats.busy_slots + info.stats.queue_depth for info in loaded)
        return [ReplicaInfo("local", os.getpid(), socket.gethostname(), self.metrics.started(), in_flight,
                            tuple(loaded))]


def chat_prompt(spec: ModelSpec, template: ChatTemplate, raw_messages: Sequence[Any],
                tools: list[dict[str, Any]] | None) -> str:
    """The prompt text of a chat turn: the model's own messages and system prompt, the request's
    messages, tools (in the template, or as a system instruction where it cannot render them)."""
    messages = [_check_message(i, m) for i, m in enumerate(raw_messages)]
    if spec.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": spec.system})
    messages = [*spec.messages, *messages] if spec.messages else messages
    if tools and not template.supports_tools:
        messages = _with_tool_instruction(messages, tools_instruction(tools))
    return template.render(messages, tools=tools, add_generation_prompt=True)


def count_chat_tokens(inference: InferenceService, req: ChatRequest) -> int:
    """How many prompt tokens ``req`` makes, as :meth:`Inference.chat` would tokenize it (BOS included
    where the model wants one), without generating; through the seam, so replicas count too."""
    spec = inference.models.resolve(req.model)
    tools = req.tools or None
    text = chat_prompt(spec, inference.models.template_for(spec), req.messages, tools)
    tokens = inference.tokenize(req.model, text, add_special=True)
    bos = inference.tokenizer_info(req.model).get("bos_token_id")
    if bos is not None and tokens[:2] == [bos, bos]:
        tokens = tokens[1:]  # the template wrote the BOS token too (as Inference._tokens drops it)
    return len(tokens)


_ROLES = {"system", "user", "assistant", "tool"}


def _check_message(index: int, message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise InvalidRequest(f"messages[{index}] must be an object", param="messages")
    role = message.get("role")
    if not isinstance(role, str) or role.lower() not in _ROLES:
        raise InvalidRequest(f"messages[{index}].role must be one of system, user, assistant, tool",
                             param="messages")
    content = message.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise InvalidRequest(f"messages[{index}].content must be a string", param="messages")
    checked = dict(message)
    checked["role"] = role.lower()
    checked["content"] = content
    if checked.get("tool_calls"):
        for call in checked["tool_calls"]:
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            if isinstance(fn.get("arguments"), str):
                with contextlib.suppress(ValueError):
                    fn["arguments"] = json.loads(fn["arguments"])
    return checked


def _with_tool_instruction(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """Offer tools through the system prompt, for templates that cannot render a tool list."""
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{instruction}")
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _renormalize(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector] if norm > 0 else vector
