"""``/openapi.json`` tells the truth: every operation that reads a body declares it, and a body built
from the declared schema alone passes the route's shape checks (what schema-driven clients and fuzzers rely on)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.server import Server

#: Messages of the shape checks (a body that does not fit the declared model); other 400s are about values.
SHAPE_ERRORS = ("invalid request:", "missing request body", "request body must be a JSON object", "invalid JSON")
#: Operations that take no JSON body by protocol: the start of an OCI blob upload.
NO_BODY = {("post", "/v2/{namespace}/{model}/blobs/uploads/")}


@pytest.fixture(scope="module")
def spec(server: Server) -> dict[str, Any]:
    response = httpx.get(server.url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    return dict(response.json())


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def example(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A value of the schema made of its required parts only, with plain example values."""
    schema = resolve(spec, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return example(spec, next(s for s in schema[key] if resolve(spec, s).get("type") != "null"))
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example(spec, props.get(name, {"type": "string"})) for name in schema.get("required", [])}
    if kind == "array":
        return [example(spec, schema.get("items", {"type": "string"}))] * schema.get("minItems", 0)
    return {"string": "nope", "integer": 1, "number": 1.0, "boolean": False}.get(kind)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()
            if method in ("post", "put", "patch")]


def test_every_body_operation_declares_its_body(spec: dict[str, Any]) -> None:
    missing = [f"{m.upper()} {p}" for m, p, op in operations(spec)
               if (m, p) not in NO_BODY and not op.get("requestBody", {}).get("content")]
    assert not missing, f"operations without a declared request body: {missing}"


def test_guarded_operations_declare_the_api_key(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["OPENZOO_API_KEY"]["scheme"] == "bearer"
    guarded = {(m, p) for p, ops in spec["paths"].items() for m, op in ops.items() if op.get("security")}
    assert guarded == {("post", "/v2/{namespace}/{model}/blobs/uploads/"),
                       ("put", "/v2/{namespace}/{model}/blobs/uploads/{upload_id}"),
                       ("put", "/v2/{namespace}/{model}/manifests/{reference}")}


def test_replies_are_declared(spec: dict[str, Any]) -> None:
    for method, path in (("post", "/api/generate"), ("post", "/v1/chat/completions"), ("post", "/v1/responses"),
                         ("post", "/v1/messages"), ("get", "/api/tags"), ("get", "/v1/models")):
        content = spec["paths"][path][method]["responses"]["200"]["content"]
        assert resolve(spec, content["application/json"]["schema"]).get("properties"), (method, path)
    # a bad body is a 400 in the API's own envelope, never FastAPI's 422
    envelopes = {"/api/chat": "OllamaError", "/v1/chat/completions": "OpenAIError", "/v1/responses": "OpenAIError",
                 "/v1/messages": "AnthropicError"}
    for path, name in envelopes.items():
        bad = spec["paths"][path]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
        assert bad == {"$ref": f"#/components/schemas/{name}"}
    assert not [p for p, ops in spec["paths"].items() for op in ops.values() if "422" in op["responses"]]


def test_bodies_built_from_the_schema_pass_the_shape_checks(spec: dict[str, Any], server: Server) -> None:
    """Model names are "nope", so nothing is generated, pulled or written: only the shape is judged."""
    checked = 0
    for method, path, op in operations(spec):
        json_body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if json_body is None or "{" in path or not path.startswith(("/api/", "/v1/", "/tokenize", "/detokenize")):
            continue
        body = example(spec, json_body["schema"])
        response = httpx.request(method.upper(), server.url + path, json=body, timeout=60)
        assert response.status_code != 422, (path, body, response.text)
        if response.status_code == 400:
            data = response.json()
            error = data["error"] if isinstance(data["error"], str) else data["error"]["message"]
            assert not error.startswith(SHAPE_ERRORS), (path, body, error)
        checked += 1
    assert checked >= 15
