"""Chat templates: turning a list of messages into the prompt string a model was trained on.

Three sources, one renderer (the Jinja sandbox of :mod:`.template_safety`):

* Jinja templates from GGUF (``tokenizer.chat_template``) or Hugging Face: checked by
  :func:`~.template_safety.ensure_template_safe` and rendered with transformers' conventions.
* Ollama Go templates from Modelfiles: translated by :mod:`.gotemplate`, then rendered with Ollama's
  conventions (``.System``/``.Prompt``/``.Response`` per turn when the template has no ``.Messages``).
* Built-in templates per architecture (:func:`builtin_template`) for files that carry none, such as
  the default Gemma 3 270M GGUF.

``ChatTemplate.source`` keeps the original text so ``show --template`` round-trips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from jinja2 import Template, TemplateError, meta
from jinja2.exceptions import SecurityError

from openzoo.errors import InvalidRequest, NotSupported, OpenzooError, UnsafeTemplate
from openzoo.formats.gotemplate import GoTranslation, translate_go_template
from openzoo.formats.template_safety import ensure_template_safe, sandboxed_environment, tojson

__all__ = [
    "ChatTemplate",
    "Message",
    "TemplateKind",
    "builtin_template",
    "template_for_model",
]

Message = Mapping[str, Any]


class TemplateKind(StrEnum):
    JINJA = "jinja"
    GO = "go"
    BUILTIN = "builtin"


def _go_items(value: Any) -> list[tuple[Any, Any]]:
    """Go's two-variable ``range``: index/element for lists, sorted key/value for maps."""
    if isinstance(value, Mapping):
        return sorted(value.items())
    return list(enumerate(value or ()))


def _go_values(value: Any) -> list[Any]:
    """Go's one-variable ``range``: elements of a list, values of a map in key order."""
    if isinstance(value, Mapping):
        return [v for _, v in sorted(value.items())]
    return list(value or ())


def _go_print(value: Any) -> Any:
    """How Go prints a value: maps and lists as JSON (Ollama's Tool/arguments types marshal so),
    booleans lower-case, missing values as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return tojson(value, separators=(",", ":"))
    return value


_HF_ENV = sandboxed_environment(hf_style=True)
_GO_ENV = sandboxed_environment(hf_style=False)
_GO_ENV.filters["go_items"] = _go_items
_GO_ENV.filters["go_values"] = _go_values
_GO_ENV.filters["go_json"] = partial(tojson, separators=(",", ":"))  # Go's json.Marshal is compact
_GO_ENV.finalize = _go_print


def _render(template: Template, context: Mapping[str, Any]) -> str:
    """Render, reporting sandbox refusals as UnsafeTemplate and template faults as InvalidRequest."""
    try:
        return template.render(**context)
    except SecurityError as exc:
        raise UnsafeTemplate(f"chat template attempted a forbidden operation: {exc}") from exc
    except OpenzooError:
        raise
    except TemplateError as exc:
        raise InvalidRequest(f"chat template failed to render: {exc}") from exc
    except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError, RecursionError) as exc:
        raise InvalidRequest(f"chat template failed to render: {type(exc).__name__}: {exc}") from exc


def _plain(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Copy messages into plain dicts with a string ``content`` (templates concatenate it)."""
    out = []
    for message in messages:
        copy = dict(message)
        copy["role"] = str(copy.get("role", "user")).lower()
        copy["content"] = "" if copy.get("content") is None else copy["content"]
        out.append(copy)
    return out


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template ready to render; build one with :meth:`from_jinja`, :meth:`from_go` or
    :func:`builtin_template`."""

    source: str
    kind: TemplateKind
    _template: Template = field(repr=False, compare=False)
    #: Strings that end a turn for this format (built-ins only; GGUF files declare their own EOS).
    stop: tuple[str, ...] = ()
    _go: GoTranslation | None = field(repr=False, compare=False, default=None)
    _prompt_template: Template | None = field(repr=False, compare=False, default=None)
    _variables: frozenset[str] = field(repr=False, compare=False, default=frozenset())

    @classmethod
    def from_jinja(
        cls, source: str, *, kind: TemplateKind = TemplateKind.JINJA, stop: Sequence[str] = ()
    ) -> ChatTemplate:
        """A Jinja (GGUF / Hugging Face) template; raises UnsafeTemplate if it reaches past messages."""
        ensure_template_safe(source)
        variables = frozenset(meta.find_undeclared_variables(_HF_ENV.parse(source)))
        return cls(source, kind, _HF_ENV.from_string(source), tuple(stop), _variables=variables)

    @classmethod
    def from_go(cls, source: str) -> ChatTemplate:
        """An Ollama Modelfile TEMPLATE; raises InvalidRequest naming any construct not supported."""
        translation = translate_go_template(source)
        for jinja in (translation.jinja, translation.prompt_jinja):
            ensure_template_safe(jinja)
        return cls(
            source,
            TemplateKind.GO,
            _GO_ENV.from_string(translation.jinja),
            _go=translation,
            _prompt_template=_GO_ENV.from_string(translation.prompt_jinja),
            _variables=translation.root_fields,
        )

    @property
    def supports_tools(self) -> bool:
        """Whether the template renders a tool list (Ollama's ``tools`` capability)."""
        return "tools" in self._variables

    @property
    def supports_insert(self) -> bool:
        """Whether the template renders ``.Suffix`` (Ollama's ``insert`` capability, for FIM)."""
        return "suffix" in self._variables

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        bos_token: str = "",
        eos_token: str = "",
        **extra: Any,
    ) -> str:
        """Render a conversation into the prompt the model continues.

        ``messages`` are dicts with ``role``, ``content`` and optionally ``tool_calls``, ``tool_name``,
        ``images``. Go templates always end ready for the assistant, so ``add_generation_prompt``,
        ``bos_token`` and ``eos_token`` only reach Jinja templates (as transformers passes them).
        """
        plain = _plain(messages)
        if self._go is None:
            context = dict(
                extra,
                messages=plain,
                tools=list(tools) if tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
                eos_token=eos_token,
            )
            return _render(self._template, context)
        if self._go.uses_messages:
            system = "\n\n".join(str(m["content"]) for m in plain if m["role"] == "system")
            return _render(
                self._template,
                self._go_context(system=system, messages=plain, tools=list(tools or []), **extra),
            )
        return self._render_legacy(plain)

    def render_prompt(self, system: str | None, prompt: str, suffix: str | None = None) -> str:
        """The ``/api/generate`` prompt: one user turn plus an optional system prompt.

        A ``suffix`` (fill-in-the-middle) needs a template that renders ``.Suffix``; others raise
        :class:`NotSupported`.
        """
        if suffix:
            if not self.supports_insert:
                raise NotSupported("the model's template does not support insert (suffix)")
            return _render(self._template, self._go_context(prompt=prompt, suffix=suffix))
        messages: list[Message] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return self.render(messages)

    @staticmethod
    def _go_context(**values: Any) -> dict[str, Any]:
        context: dict[str, Any] = {
            "system": "",
            "prompt": "",
            "response": "",
            "suffix": "",
            "messages": [],
            "tools": [],
            "think": False,
        }
        context.update(values)
        return {"go": context}

    def _render_legacy(self, messages: list[dict[str, Any]]) -> str:
        """Ollama's rendering of a template without ``.Messages``: one pass per exchange.

        Each finished system/user/assistant exchange is rendered whole; the last is rendered with the
        template cut after ``{{ .Response }}`` so the prompt ends where the model should continue.
        """
        assert self._prompt_template is not None
        merged: list[dict[str, Any]] = []
        for message in messages:
            if merged and merged[-1]["role"] == message["role"]:
                merged[-1]["content"] = f"{merged[-1]['content']}\n\n{message['content']}"
            else:
                merged.append(dict(message))
        parts: list[str] = []
        turn = {"system": "", "prompt": "", "response": ""}

        def flush() -> None:
            parts.append(_render(self._template, self._go_context(**turn)))
            turn.update(system="", prompt="", response="")

        for message in merged:
            role, content = message["role"], str(message["content"])
            if role == "system":
                if turn["prompt"] or turn["response"]:
                    flush()
                turn["system"] = content
            elif role == "user":
                if turn["response"]:
                    flush()
                turn["prompt"] = content
            elif role == "assistant":
                turn["response"] = content
        parts.append(_render(self._prompt_template, self._go_context(**turn)))
        return "".join(parts)


# --- built-in templates ------------------------------------------------------------------------
# BOS is left to the tokenizer (llama.cpp adds it when the GGUF says add_bos_token), so none of
# these emit it.

_GEMMA = """\
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] ~ '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- if not loop_messages and first_user_prefix -%}
    {%- set loop_messages = [{'role': 'user', 'content': ''}] -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- set role = 'model' if message['role'] == 'assistant' else 'user' -%}
    {{ '<start_of_turn>' ~ role ~ '\n' ~ (first_user_prefix if loop.first else '') }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""

_LLAMA3 = """\
{%- for message in messages -%}
    {%- set role = 'ipython' if message['role'] == 'tool' else message['role'] -%}
    {{ '<|start_header_id|>' ~ role ~ '<|end_header_id|>\n\n' ~ (message['content'] | trim) ~ '<|eot_id|>' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif -%}
"""

_CHATML = """\
{%- for message in messages -%}
    {{ '<|im_start|>' ~ message['role'] ~ '\n' ~ message['content'] ~ '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<|im_start|>assistant\n' }}
{%- endif -%}
"""

_PHI3 = """\
{%- for message in messages -%}
    {{ '<|' ~ message['role'] ~ '|>\n' ~ message['content'] ~ '<|end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<|assistant|>\n' }}
{%- endif -%}
"""

_BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gemma": (_GEMMA, ("<end_of_turn>",)),
    "llama": (_LLAMA3, ("<|eot_id|>",)),
    "chatml": (_CHATML, ("<|im_end|>",)),
    "phi3": (_PHI3, ("<|end|>",)),
}
_ARCHITECTURES = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "llama": "llama", "llama4": "llama",
    "qwen2": "chatml", "qwen2moe": "chatml", "qwen3": "chatml", "qwen3moe": "chatml",
    "phi3": "phi3",
}  # fmt: skip


def builtin_template(architecture: str | None) -> ChatTemplate:
    """The template openzoo assumes for a GGUF architecture whose file carries none.

    Unknown architectures get ChatML, which is also llama.cpp's fallback.
    """
    source, stop = _BUILTINS[_ARCHITECTURES.get((architecture or "").lower(), "chatml")]
    return ChatTemplate.from_jinja(source, kind=TemplateKind.BUILTIN, stop=stop)


def template_for_model(
    architecture: str | None,
    *,
    gguf_template: str | None = None,
    modelfile_template: str | None = None,
) -> ChatTemplate:
    """The template to use: a Modelfile TEMPLATE wins, then the GGUF's own, then the built-in."""
    if modelfile_template:
        return ChatTemplate.from_go(modelfile_template)
    if gguf_template:
        return ChatTemplate.from_jinja(gguf_template)
    return builtin_template(architecture)
