"""Every service's OpenAPI document says what the service answers (departments generate clients
from it): JSON answers are objects, exports are CSV or JSON lines, every error is problem details
and documented where it can happen, and `POST /v1/requests` documents the envelopes it takes. The
document is one schemathesis can load and build requests from."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import schemathesis
from credit_common.contracts.registry import REGISTRY
from credit_common.http.auth import Access, rule_for
from credit_common.service import build_app
from credit_common.settings import SERVICE_PORTS, Settings
from schemathesis.core.result import Ok


def document(name: str) -> dict[str, Any]:
    return dict(build_app(importlib.import_module(f"services.{name}.app").definition, Settings()).openapi())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_answers_are_documented_as_they_are_sent(name: str) -> None:
    doc = document(name)
    for path, method, op in operations(doc):
        where = f"{name}: {method.upper()} {path}"
        for code, response in op["responses"].items():
            content = response.get("content", {})
            if code.startswith("2"):
                if path.endswith(".csv"):
                    assert set(content) == {"text/csv"}, where
                elif path.endswith(".jsonl"):
                    assert set(content) == {"application/jsonl"}, where
                elif "application/json" in content:
                    assert content["application/json"]["schema"] != {"type": "string"}, where
            else:
                assert set(content) == {"application/problem+json"}, (where, code)
        assert "400" in op["responses"], where
        if rule_for(method.upper(), path).access is not Access.OPEN:
            assert {"401", "403"} <= set(op["responses"]), where
        if "{" in path:
            assert "404" in op["responses"], where


def test_the_ingress_documents_every_request_envelope() -> None:
    doc = document("designation")
    body = doc["paths"]["/v1/requests"]["post"]["requestBody"]["content"]["application/cloudevents+json"]["schema"]
    refs = {option["$ref"].rpartition("/")[2] for option in body["anyOf"]}
    requests = [name for name, row in REGISTRY.items() if row.kind == "request"]
    assert len(refs) == len(requests)
    for ref in refs:
        envelope = doc["components"]["schemas"][ref]
        assert envelope["properties"]["type"]["const"] in requests
        assert "data" in envelope["required"]


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_schemathesis_loads_every_document_and_builds_requests_from_it(name: str) -> None:
    schema = schemathesis.openapi.from_dict(document(name))
    found = list(schema.get_all_operations())
    assert found
    for result in found:
        assert isinstance(result, Ok), result  # an operation, not an invalid-schema error
        assert result.ok().path in schema.raw_schema["paths"]
