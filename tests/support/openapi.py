"""The OpenAPI walk of both services' tests: which operations do not say what they answer."""

from __future__ import annotations

from typing import Any


def _declared(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    """True if ``schema`` says something about the body: a model, a typed list of them, a string (a file) — not ``{}`` or a bare object."""
    if "$ref" in schema or "properties" in schema:
        return True
    if "anyOf" in schema or "oneOf" in schema:
        return all(_declared(s, spec) for s in schema.get("anyOf", schema.get("oneOf", [])))
    kind = schema.get("type")
    if kind == "array":
        return _declared(schema.get("items", {}), spec)
    if kind == "object":
        extra = schema.get("additionalProperties")
        return isinstance(extra, dict) and _declared(extra, spec)
    return kind in ("string", "integer", "number", "boolean", "null")


def undeclared(spec: dict[str, Any]) -> list[str]:
    """``METHOD path`` of each operation whose success answer has no schema, or only the empty one FastAPI fills in.

    A 204 answer has no body, so it needs none; every other success answer
    must declare each of its media types with a schema.
    """
    missing = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            answers = {code: body for code, body in operation.get("responses", {}).items() if code.startswith("2")}
            ok = bool(answers) and all(
                code == "204" or (body.get("content") and all(_declared(media.get("schema", {}), spec)
                                                               for media in body["content"].values()))
                for code, body in answers.items())
            if not ok:
                missing.append(f"{method.upper()} {path}")
    return sorted(missing)
