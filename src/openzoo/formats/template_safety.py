"""Keep chat templates to rendering messages.

A GGUF's ``tokenizer.chat_template`` is Jinja written by whoever made the file, and rendering it in a
plain ``jinja2.Environment`` is remote code execution on load (CVE-2024-34359 "Llama Drama",
CVE-2026-5760). openzoo defends twice:

1. :func:`check_template_safety` reads the parsed template and lists every reach for Python
   internals (dunder or private attributes, ``self``/``cycler``/``joiner``/``lipsum``/``config``…
   globals, ``import``/``include``/``extends``), so a hostile file is refused at import with a reason.
2. Every render runs in :func:`sandboxed_environment`, an ``ImmutableSandboxedEnvironment`` that
   also caps the size of ``*`` and ``**`` results; a :class:`jinja2.sandbox.SecurityError` at render is
   reported as :class:`~openzoo.errors.UnsafeTemplate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from openzoo.errors import InvalidRequest, UnsafeTemplate

__all__ = [
    "MAX_RESULT_ITEMS",
    "MAX_TEMPLATE_CHARS",
    "check_template_safety",
    "ensure_template_safe",
    "raise_exception",
    "sandboxed_environment",
    "strftime_now",
    "tojson",
]

#: Real chat templates are a few KB (the largest seen in the wild are ~30 KB).
MAX_TEMPLATE_CHARS = 256 * 1024
#: The longest string or list a template may build with ``*`` (or the largest ``**`` result).
MAX_RESULT_ITEMS = 1_000_000

_FORBIDDEN_NAMES = frozenset(
    {
        "self", "cycler", "joiner", "lipsum", "config", "request", "session", "url_for",
        "get_flashed_messages", "os", "sys", "subprocess", "builtins", "__builtins__", "import",
        "__import__", "importlib", "globals", "locals", "eval", "exec", "compile",
        "getattr", "setattr", "delattr", "open", "_TemplateReference__context",
    }
)  # fmt: skip
_FORBIDDEN_ATTRS = frozenset(
    {
        "mro", "popen", "environ", "subclasses", "func_globals", "func_code", "f_globals",
        "f_locals", "f_builtins", "f_back", "gi_frame", "gi_code", "cr_frame", "ag_frame",
        "co_code", "tb_frame", "import_module", "load_module", "format_map",
    }
)  # fmt: skip
_ATTRIBUTE_FILTERS = frozenset(
    {"map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max", "attr"}
)
_DUNDER = re.compile(r"__\w*__|_TemplateReference")


def _attr_problem(name: str) -> str | None:
    if name.startswith("_"):
        return f"access to private attribute {name!r}"
    if name in _FORBIDDEN_ATTRS:
        return f"access to attribute {name!r}"
    return None


def _problems(tree: nodes.Template) -> Iterable[str]:
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr):
            problem = _attr_problem(node.attr)
            if problem:
                yield f"line {node.lineno}: {problem}"
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            if isinstance(node.arg.value, str) and (problem := _attr_problem(node.arg.value)):
                yield f"line {node.lineno}: {problem}"
        elif isinstance(node, nodes.Name) and node.ctx == "load" and node.name in _FORBIDDEN_NAMES:
            yield f"line {node.lineno}: use of {node.name!r}"
        elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
            yield f"line {node.lineno}: {type(node).__name__.lower()} of another template"
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            yield from _filter_problems(node)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str) and _DUNDER.search(node.value):
            yield f"line {node.lineno}: string naming a Python internal {node.value!r}"


def _filter_problems(node: nodes.Filter) -> Iterable[str]:
    """``|attr('__class__')`` and ``|map(attribute='__class__')`` are attribute access too."""
    names: list[nodes.Expr] = list(node.args[:1]) if node.name == "attr" else []
    names += [kw.value for kw in node.kwargs if kw.key == "attribute"]
    for expr in names:
        if not isinstance(expr, nodes.Const) or not isinstance(expr.value, str | int):
            yield f"line {node.lineno}: |{node.name} with a computed attribute name"
            continue
        for part in str(expr.value).split("."):
            if problem := _attr_problem(part):
                yield f"line {node.lineno}: {problem} through |{node.name}"


def check_template_safety(source: str) -> list[str]:
    """List the reasons a Jinja chat template is unsafe (empty when it only renders messages).

    Raises :class:`InvalidRequest` when the template is not valid Jinja at all.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        return [f"template is {len(source)} characters, more than {MAX_TEMPLATE_CHARS}"]
    try:
        tree = sandboxed_environment().parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidRequest(f"chat template syntax error at line {exc.lineno}: {exc.message}") from exc
    return list(dict.fromkeys(_problems(tree)))


def ensure_template_safe(source: str) -> None:
    """Raise :class:`UnsafeTemplate` naming every problem :func:`check_template_safety` finds."""
    problems = check_template_safety(source)
    if problems:
        raise UnsafeTemplate("unsafe chat template: " + "; ".join(problems))


def raise_exception(message: str) -> NoReturn:
    """The ``raise_exception`` global HF templates call to reject a conversation."""
    raise InvalidRequest(f"chat template rejected the conversation: {message}")


def strftime_now(fmt: str) -> str:
    """The ``strftime_now`` global HF templates use for dated system prompts."""
    return datetime.now().strftime(fmt)


def tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """HF's ``tojson``: plain JSON, not Jinja's HTML-escaped variant (templates emit it verbatim)."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, plus a cap on ``'x' * n`` and ``a ** b`` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64 and not (isinstance(left, int) and abs(left) <= 1):
                raise SecurityError("exponent too large in template")
        elif isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            count, seq = (right, left) if isinstance(left, str | list | tuple) else (left, right)
            if isinstance(count, int) and count * len(seq) > MAX_RESULT_ITEMS:
                raise SecurityError("repeated sequence too large in template")
        return super().call_binop(context, operator, left, right)


def sandboxed_environment(*, hf_style: bool = True) -> ImmutableSandboxedEnvironment:
    """A fresh sandbox with the globals chat templates expect.

    ``hf_style`` gives transformers' settings (``trim_blocks``, ``lstrip_blocks``); without it the
    environment keeps whitespace exactly, as the Go-template translation needs.
    """
    env = _Environment(
        trim_blocks=hf_style,
        lstrip_blocks=hf_style,
        keep_trailing_newline=not hf_style,
        autoescape=False,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.filters["tojson"] = tojson
    return env
