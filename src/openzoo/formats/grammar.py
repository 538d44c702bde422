"""GBNF grammars for structured output (Ollama's ``format``: ``"json"`` or a JSON schema).

llama.cpp constrains sampling with a GBNF grammar. ``format: "json"`` gets :func:`json_grammar`
(any JSON value, whitespace bounded so a model cannot pad forever); a schema is converted by
llama-cpp-python's own ``json_schema_to_gbnf`` (the converter llama.cpp ships), after openzoo has
checked the schema itself: the converter signals unsupported input with ``assert`` (gone under
``python -O``) and would try to fetch ``https://`` references, so both are handled here first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from openzoo.errors import InvalidRequest

__all__ = ["MAX_SCHEMA_DEPTH", "MAX_SCHEMA_NODES", "grammar_for_format", "json_grammar", "schema_grammar"]

MAX_SCHEMA_DEPTH = 64
MAX_SCHEMA_NODES = 10_000

_JSON_GBNF = r"""root   ::= ws value
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,4})? ws

ws ::= | " " | "\n" [ \t]{0,20}
"""


def json_grammar() -> str:
    """GBNF accepting exactly one JSON value (object, array, string, number, true, false, null)."""
    return _JSON_GBNF


def _check_schema(node: Any, depth: int, seen: list[int]) -> None:
    """Bound the schema's size and depth and refuse references that leave the document."""
    seen[0] += 1
    if depth > MAX_SCHEMA_DEPTH or seen[0] > MAX_SCHEMA_NODES:
        raise InvalidRequest("JSON schema is too large or too deeply nested", param="format")
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
            raise InvalidRequest(
                f"JSON schema $ref {ref!r} is not supported: only local '#/...' references", param="format"
            )
        for value in node.values():
            _check_schema(value, depth + 1, seen)
    elif isinstance(node, list):
        for value in node:
            _check_schema(value, depth + 1, seen)


def schema_grammar(schema: Mapping[str, Any]) -> str:
    """GBNF for values matching a JSON schema; :class:`InvalidRequest` if it cannot be expressed."""
    if not isinstance(schema, Mapping):
        raise InvalidRequest('format must be "json" or a JSON schema object', param="format")
    _check_schema(schema, 0, [0])
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # loads libllama: only when needed

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except (
        AssertionError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        NotImplementedError,
        RecursionError,
    ) as exc:
        raise InvalidRequest(f"unsupported JSON schema: {exc or type(exc).__name__}", param="format") from exc
    if not isinstance(grammar, str) or "root ::=" not in grammar:
        raise InvalidRequest("unsupported JSON schema: no grammar could be built", param="format")
    return grammar


def grammar_for_format(fmt: str | Mapping[str, Any] | None) -> str | None:
    """The grammar for a request's ``format`` field: None when unconstrained."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return json_grammar()
    if isinstance(fmt, Mapping):
        return schema_grammar(fmt)
    raise InvalidRequest(f'invalid format {fmt!r}: expected "json" or a JSON schema', param="format")
