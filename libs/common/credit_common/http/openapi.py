"""The OpenAPI document as the service answers, since departments generate clients from it
(FastAPI's own document says less than the truth where a route answers through a response class
of ours rather than a model):

- a JSON answer is an object, never the "string" FastAPI infers from our `JsonResponse`;
- exports are `text/csv` or `application/jsonl`, dashboards `text/html`, `/metrics` text;
- every error is `application/problem+json` (RFC 9457), documented where it can happen: 400 for
  any request (hostile input, a bad cursor), 401 and 403 where a token is needed, 404 where the
  path names something, 413 for a request body, 422 for invalid parameters or bodies, 503 for
  exports and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from credit_common.http.auth import Access, rule_for
from credit_common.http.problems import PROBLEM_JSON

PROBLEM = "ProblemDetails"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` lists what was wrong with a request",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status"],
}
REASONS = {
    "400": "Bad request: hostile input (control characters, not UTF-8) or a cursor this service did not give",
    "401": "No valid bearer token",
    "403": "The token's principal may not do this",
    "404": "Nothing of that name",
    "413": "The body is larger than the platform takes",
    "422": "Invalid parameters or body",
    "503": "Not available now (a dependency is down, or an export could not be read)",
}
MEDIA = {".csv": "text/csv", ".jsonl": "application/jsonl"}


def _problem(code: str) -> dict[str, Any]:
    return {
        "description": REASONS[code],
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}},
    }


def truthful(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (FastAPI's document) made to say what the service answers."""
    doc.setdefault("components", {}).setdefault("schemas", {})[PROBLEM] = PROBLEM_SCHEMA
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            responses: dict[str, Any] = op.setdefault("responses", {})
            for code, response in responses.items():
                content = response.get("content")
                if not content:
                    continue
                if code.startswith("2"):
                    media = next((m for suffix, m in MEDIA.items() if path.endswith(suffix)), None)
                    if media is not None:
                        response["content"] = {media: {"schema": {"type": "string"}}}
                    elif "application/json" in content:
                        schema = content["application/json"].get("schema", {})
                        if schema in ({}, {"type": "string"}):
                            content["application/json"]["schema"] = {"type": "object"}
                elif code == "422":
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}}
            needed = ["400"]
            if rule_for(method.upper(), path).access is not Access.OPEN:
                needed += ["401", "403"]
            names = {p.get("name") for p in op.get("parameters", [])}
            if "{" in path or "list" in names:  # a path naming something, or a list by name
                needed.append("404")
            if method in ("post", "put", "patch"):
                needed += ["413", "422"]
            if any(path.endswith(s) for s in MEDIA) or path == "/health/ready":
                needed.append("503")
            for code in needed:
                responses.setdefault(code, _problem(code))
            for code, response in responses.items():  # declared by a route without a body: a problem
                if code[0] in "45" and not response.get("content"):
                    response["content"] = _problem(code if code in REASONS else "400")["content"]
    return doc


def request_body(types: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema, component schemas) of a body that is one of the envelopes of `types` (each a
    CloudEvent whose `type` is fixed and whose `data` is its contract model), for `openapi_extra`;
    the component schemas go to `app.state.openapi_components`."""
    from typing import Union

    from pydantic import TypeAdapter

    from credit_common.messaging.asyncapi import envelope_model

    models = tuple(envelope_model(t) for t in types)
    union: Any = Union[models] if len(models) > 1 else models[0]  # noqa: UP007
    schema = TypeAdapter(union).json_schema(ref_template="#/components/schemas/{model}", mode="validation")
    defs = schema.pop("$defs", {})
    return schema, defs


def install(app: FastAPI) -> None:
    """Serve the truthful document at `/openapi.json` (built once, at the first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            extra = getattr(app.state, "openapi_components", {})
            doc.setdefault("components", {}).setdefault("schemas", {}).update(extra)
            app.openapi_schema = truthful(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
