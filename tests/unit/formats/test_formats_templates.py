"""ChatTemplate: Ollama Go templates (translated), built-ins per architecture, generate-style prompts."""

from __future__ import annotations

from typing import Any

import pytest

from openzoo.errors import InvalidRequest, NotSupported, UnsafeTemplate
from openzoo.formats.gotemplate import translate_go_template
from openzoo.formats.templates import ChatTemplate, TemplateKind, builtin_template, template_for_model

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]

# Ollama's legacy ChatML template (qwen, openhermes Modelfiles): no .Messages.
GO_CHATML = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
"""

# Ollama library gemma3 TEMPLATE.
GO_GEMMA3 = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""

GO_TOOLS = """{{- if .Tools }}Tools:{{ range .Tools }} {{ json .Function }}{{ end }}
{{ end }}
{{- range .Messages }}
{{- if eq .Role "assistant" }}{{ range .ToolCalls }}CALL {{ .Function.Name }} \
{{ json .Function.Arguments }}{{ end }}{{ .Content }}
{{ else if eq .Role "tool" }}RESULT {{ .ToolName }}: {{ .Content }}
{{ else }}{{ .Role }}: {{ .Content }}
{{ end }}
{{- end }}assistant:"""

GO_FIM = (
    "{{ if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>"
    "{{ else }}{{ .Prompt }}{{ end }}"
)


def test_legacy_go_template_renders_each_exchange() -> None:
    template = ChatTemplate.from_go(GO_CHATML)
    assert template.kind is TemplateKind.GO
    assert template.source == GO_CHATML
    assert template.render(MESSAGES) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_legacy_go_template_generate_prompt() -> None:
    template = ChatTemplate.from_go(GO_CHATML)
    assert template.render_prompt("S", "P") == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nP<|im_end|>\n<|im_start|>assistant\n"
    )
    assert template.render_prompt(None, "P") == "<|im_start|>user\nP<|im_end|>\n<|im_start|>assistant\n"


def test_messages_go_template_matches_ollama_gemma3() -> None:
    template = ChatTemplate.from_go(GO_GEMMA3)
    assert template.render(MESSAGES) == (
        "<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_go_tools_and_tool_calls() -> None:
    template = ChatTemplate.from_go(GO_TOOLS)
    assert template.supports_tools
    tools = [{"type": "function", "function": {"name": "clock", "parameters": {}}}]
    messages = [
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "clock", "arguments": {"tz": "UTC"}}}],
        },
        {"role": "tool", "content": "12:00", "tool_name": "clock"},
    ]
    assert template.render(messages, tools=tools) == (
        'Tools: {"name":"clock","parameters":{}}\nuser: time?\nCALL clock {"tz":"UTC"}\nRESULT clock: 12:00\nassistant:'
    )


def test_fim_template_supports_insert() -> None:
    template = ChatTemplate.from_go(GO_FIM)
    assert template.supports_insert
    assert template.render_prompt(None, "def f(", "return x") == (
        "<|fim_prefix|>def f(<|fim_suffix|>return x<|fim_middle|>"
    )
    assert template.render_prompt(None, "plain") == "plain"
    with pytest.raises(NotSupported, match="insert"):
        ChatTemplate.from_go(GO_CHATML).render_prompt(None, "a", "b")
    with pytest.raises(NotSupported):
        builtin_template("gemma3").render_prompt(None, "a", "b")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a  {{- .Prompt -}}  \n b", "aPb"),
        ("{{/* a comment */}}x", "x"),
        ("a\n{{- /* trimmed comment */ -}}\nb", "ab"),
        ("{{ with .System }}S={{ . }}{{ else }}none{{ end }}", "S=sys"),
        ("{{ range .Messages }}[{{ .Role }}]{{ else }}empty{{ end }}", "[system][user]"),
        ("{{ range $i, $m := .Messages }}{{ $i }}{{ $m.Role }} {{ end }}", "0system 1user "),
        (
            '{{ range .Messages }}{{ if eq .Role "system" }}{{ continue }}{{ end }}{{ .Content }}{{ end }}',
            "P",
        ),
        ("{{ range .Messages }}{{ .Content }}{{ break }}{{ end }}", "sys"),
        ('{{ if and .System (ne .Prompt "x") }}yes{{ end }}', "yes"),
        ("{{ if or (eq (len .Messages) 3) (gt (len .Messages) 1) }}many{{ end }}", "many"),
        ("{{ (index .Messages 1).Content }}", None),
        ('{{ (index .Messages 1)["content"] }}', None),
        ('{{ index .Messages 1 "content" }}', "P"),
        ("{% raw %}{{ .Prompt }} {# x #}", "{% raw %}P {# x #}"),
        ("brace {{ .Prompt }}{", "brace P{"),
        ('{{ if eq .Prompt "P" `Q` }}match{{ end }}', "match"),
        ("{{ $x := .Prompt }}{{ $x }}{{ $x }}", "PP"),
        ("{{ if not .Suffix }}no suffix{{ end }}", "no suffix"),
        ("{{ slice .Prompt 0 1 }}", "P"),
        ("{{ .Not }}{{ .True }}{{ .Range }}{{ .Loop }}|{{ .Prompt }}", "|P"),
    ],
)
def test_go_constructs(source: str, expected: str | None) -> None:
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "P"}]
    if expected is None:
        with pytest.raises(InvalidRequest):
            ChatTemplate.from_go(source)
        return
    assert ChatTemplate.from_go(source).render(messages) == expected


@pytest.mark.parametrize(
    ("source", "construct"),
    [
        ('{{ template "x" . }}', "'template' is not supported"),
        ('{{ define "x" }}y{{ end }}', "'define' is not supported"),
        ('{{ block "x" . }}y{{ end }}', "'block' is not supported"),
        ("{{ .Prompt | html }}", "pipelines"),
        ('{{ printf "%s" .Prompt }}', "function 'printf' is not supported"),
        ("{{ call .Prompt }}", "function 'call' is not supported"),
        ("{{ if .System }}x", "unclosed Go template block"),
        ("x{{ end }}", "end without an open block"),
        ("{{ $x := 1 }}{{ $x = 2 }}", "assignment with '='"),
        ("{{ $y }}", "undefined variable"),
        ("{{ . }}", "the whole context"),
        ("{{ .Prompt", "unclosed Go template action"),
        ("{{ else }}", "else without"),
        ("{{ range .Messages }}{{ else if .x }}{{ end }}", "'else if' is not supported"),
        ("{{ break }}", "break outside range"),
        ("{{ .Prompt ; }}", "unrecognised text"),
    ],
)
def test_unsupported_go_constructs_are_named(source: str, construct: str) -> None:
    with pytest.raises(InvalidRequest, match=construct):
        ChatTemplate.from_go(source)


def test_go_dunder_fields_are_unsafe() -> None:
    with pytest.raises(UnsafeTemplate):
        ChatTemplate.from_go("{{ .Messages.__class__ }}")


def test_go_field_names_become_wire_keys() -> None:
    translation = translate_go_template("{{ range .Messages }}{{ .ToolCallID }}{{ .ToolName }}{{ end }}")
    assert '["tool_call_id"]' in translation.jinja
    assert '["tool_name"]' in translation.jinja
    assert translation.uses_messages


def test_builtin_gemma3_folds_system_and_omits_bos() -> None:
    template = builtin_template("gemma3")
    assert template.kind is TemplateKind.BUILTIN
    assert template.stop == ("<end_of_turn>",)
    assert template.render(MESSAGES) == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert template.render_prompt(None, "Why is the sky blue?") == (
        "<start_of_turn>user\nWhy is the sky blue?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert template.render_prompt("Sys", "") == "<start_of_turn>user\nSys\n\n<end_of_turn>\n<start_of_turn>model\n"
    assert template.render([{"role": "system", "content": "only"}], add_generation_prompt=False) == (
        "<start_of_turn>user\nonly\n\n<end_of_turn>\n"
    )


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [
        ("llama", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("qwen2", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        ("phi3", "<|user|>\nHi<|end|>\n<|assistant|>\n"),
        ("mamba", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        (None, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
    ],
)  # fmt: skip
def test_builtin_templates(architecture: str | None, expected: str) -> None:
    assert builtin_template(architecture).render([{"role": "user", "content": "Hi"}]) == expected


def test_template_for_model_precedence() -> None:
    assert template_for_model("gemma3").kind is TemplateKind.BUILTIN
    assert template_for_model("gemma3", gguf_template="{{ messages[0].content }}").kind is TemplateKind.JINJA
    chosen = template_for_model("gemma3", gguf_template="{{ x }}", modelfile_template="{{ .Prompt }}")
    assert chosen.kind is TemplateKind.GO
    assert chosen.source == "{{ .Prompt }}"


def test_messages_are_not_mutated_and_none_content_is_empty() -> None:
    messages = [{"role": "USER", "content": None}]
    assert builtin_template("qwen2").render(messages) == "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
    assert messages == [{"role": "USER", "content": None}]


# Ollama library qwen2.5 TEMPLATE: tools, tool calls, $last, and a legacy branch.
GO_QWEN25 = """{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""


def test_ollama_qwen25_template_with_tools() -> None:
    template = ChatTemplate.from_go(GO_QWEN25)
    assert template.supports_tools
    tools = [{"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "clock", "arguments": {"tz": "UTC"}}}],
        },
        {"role": "tool", "content": "12:00"},
    ]
    assert template.render(messages, tools=tools) == (
        "<|im_start|>system\nS\n\n# Tools\n\n<tools>\n"
        '{"type": "function", "function": {"name":"clock","parameters":{"type":"object"}}}\n'
        "</tools><|im_end|>\n"
        "<|im_start|>user\ntime?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "clock", "arguments": {"tz":"UTC"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert template.render_prompt(None, "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_go_prints_values_as_go_does() -> None:
    template = ChatTemplate.from_go("{{ range .Messages }}{{ .Flag }}|{{ .Missing }}|{{ .Content }}{{ end }}")
    assert template.render([{"role": "user", "content": ["a"], "flag": True}]) == 'true||["a"]'
