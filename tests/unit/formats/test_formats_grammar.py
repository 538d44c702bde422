"""GBNF for format: "json" and JSON schemas, with clear errors for what cannot be expressed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from openzoo.errors import InvalidRequest
from openzoo.formats.grammar import grammar_for_format, json_grammar, schema_grammar


def rule_names(grammar: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9-]+)\s*::=", grammar, re.MULTILINE))


def test_json_grammar_accepts_any_value_at_the_root() -> None:
    grammar = json_grammar()
    assert re.search(r"^root\s*::= ws value$", grammar, re.MULTILINE)
    assert {"root", "value", "object", "array", "string", "number", "ws"} <= rule_names(grammar)
    for name in rule_names(grammar):  # every referenced rule is defined
        assert name in grammar


def test_schema_grammar_builds_rules_for_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    grammar = schema_grammar(schema)
    assert "root ::=" in grammar
    assert '"\\"name\\""' in grammar and '"\\"age\\""' in grammar


def test_local_refs_are_allowed() -> None:
    schema = {"$defs": {"n": {"type": "number"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    assert "root ::=" in schema_grammar(schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "https://example.com/schema.json"}, "only local"),
        ({"properties": {"a": {"$ref": "file:///etc/passwd"}}}, "only local"),
        ({"type": "wibble"}, "unsupported JSON schema"),
        ({"type": "string", "pattern": "no anchors"}, "unsupported JSON schema"),
        ({"not": {"type": "string"}}, "unsupported JSON schema"),
    ],
)
def test_unsupported_schemas_are_invalid_requests(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        schema_grammar(schema)
    assert caught.value.param == "format"


def test_huge_or_deep_schemas_are_refused() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(100):
        deep = {"type": "array", "items": deep}
    with pytest.raises(InvalidRequest, match="too large or too deeply nested"):
        schema_grammar(deep)
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20_000)}}
    with pytest.raises(InvalidRequest, match="too large"):
        schema_grammar(wide)


def test_grammar_for_format() -> None:
    assert grammar_for_format(None) is None
    assert grammar_for_format("") is None
    assert grammar_for_format("json") == json_grammar()
    assert "root ::=" in (grammar_for_format({"type": "boolean"}) or "")
    with pytest.raises(InvalidRequest, match='expected "json" or a JSON schema'):
        grammar_for_format("yaml")
    with pytest.raises(InvalidRequest):
        schema_grammar(["not", "a", "dict"])  # type: ignore[arg-type]
