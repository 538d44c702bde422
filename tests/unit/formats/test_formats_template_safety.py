"""Chat-template safety: real SSTI payloads are refused, real chat templates pass and render."""

from __future__ import annotations

from typing import Any

import pytest

from openzoo.errors import InvalidRequest, UnsafeTemplate
from openzoo.formats.template_safety import check_template_safety, ensure_template_safe
from openzoo.formats.templates import ChatTemplate

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

# google/gemma-3-*-it tokenizer_config.json chat_template.
GEMMA3_HF = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# Shaped like Qwen 2.5 / Llama 3.2: tools, namespace(), tojson, strftime_now.
TOOLS_TEMPLATE = """{%- set ns = namespace(found=false) -%}
{%- if tools -%}
<|im_start|>system
Today is {{ strftime_now('%d %b %Y') }}. Tools:
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'assistant' and message.tool_calls -%}
{%- set ns.found = true -%}
<|im_start|>assistant
{% for call in message.tool_calls %}<tool_call>{"name": "{{ call.function.name }}", "arguments": \
{{ call.function.arguments | tojson }}}</tool_call>{% endfor %}<|im_end|>
{% else -%}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}
"""

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]

MALICIOUS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ ''['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr(name) }}",
    "{{ messages|map(attribute='__class__')|list }}",
    "{{ messages|map(attribute='x.__class__')|list }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% include 'other.j2' %}",
    "{% import 'os' as os %}",
    "{% extends 'base.j2' %}",
    "{{ x.gi_frame.f_globals }}",
    "{{ '{0.__class__}'.format(1) }}",
]


@pytest.mark.parametrize("template", [CHATML, LLAMA3, GEMMA3_HF, TOOLS_TEMPLATE])
def test_real_templates_are_safe(template: str) -> None:
    assert check_template_safety(template) == []


@pytest.mark.parametrize("template", MALICIOUS)
def test_ssti_payloads_are_refused(template: str) -> None:
    assert check_template_safety(template)
    with pytest.raises(UnsafeTemplate, match="unsafe chat template"):
        ChatTemplate.from_jinja(template)


def test_problems_name_line_and_construct() -> None:
    problems = check_template_safety("ok\n{{ cycler.__init__ }}")
    assert sorted(problems) == ["line 2: access to private attribute '__init__'", "line 2: use of 'cycler'"]


def test_syntax_errors_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequest, match="syntax error at line 1"):
        check_template_safety("{% for %}")


def test_oversized_templates_are_refused() -> None:
    with pytest.raises(UnsafeTemplate, match="characters"):
        ensure_template_safe("x" * 300_000)


def test_computed_dunder_access_fails_at_render_as_unsafe() -> None:
    sneaky = "{% set a = '__cla' ~ 'ss__' %}{{ ''[a][a] }}"
    assert check_template_safety(sneaky) == []
    template = ChatTemplate.from_jinja(sneaky)
    with pytest.raises(UnsafeTemplate, match="forbidden operation"):
        template.render(MESSAGES)


def test_memory_bombs_are_stopped() -> None:
    with pytest.raises(UnsafeTemplate):
        ChatTemplate.from_jinja("{{ 'x' * 1000000000 }}").render(MESSAGES)
    with pytest.raises(UnsafeTemplate):
        ChatTemplate.from_jinja("{{ 10 ** 100000 }}").render(MESSAGES)
    with pytest.raises(InvalidRequest):
        ChatTemplate.from_jinja("{% for i in range(10 ** 9) %}x{% endfor %}").render(MESSAGES)


def test_container_mutation_is_refused_at_render() -> None:
    template = ChatTemplate.from_jinja("{{ messages.append(1) }}")
    with pytest.raises(UnsafeTemplate):
        template.render(MESSAGES)


def test_chatml_and_llama3_render() -> None:
    assert ChatTemplate.from_jinja(CHATML).render(MESSAGES[1:2]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    rendered = ChatTemplate.from_jinja(LLAMA3).render(MESSAGES[1:2], bos_token="<|begin_of_text|>")
    assert rendered == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_gemma_hf_template_folds_system_and_raises_on_bad_order() -> None:
    template = ChatTemplate.from_jinja(GEMMA3_HF)
    assert template.render(MESSAGES, bos_token="<bos>") == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n"
    )
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        template.render([{"role": "assistant", "content": "x"}])


def test_tools_template_renders_tools_and_calls() -> None:
    template = ChatTemplate.from_jinja(TOOLS_TEMPLATE)
    assert template.supports_tools
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    out = template.render(messages, tools=tools)
    assert '{"type": "function", "function": {"name": "get_weather"' in out
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in out
    assert out.endswith("<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n")
    assert not ChatTemplate.from_jinja(CHATML).supports_tools
