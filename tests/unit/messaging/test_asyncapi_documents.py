"""Every service's AsyncAPI document tells what travels: each consumed topic with the payloads of
the types the service takes from THAT topic (not the last topic's, as the generator once gave every
subscriber), the record key of each topic, the `content-type` header, and no `correlationId` header
that no message carries."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts.registry import REGISTRY
from credit_common.messaging import topics
from credit_common.service import build_app
from credit_common.settings import SERVICE_PORTS, Settings
from fastapi.routing import APIRoute

TOOLS = Path(__file__).resolve().parents[3] / "deploy" / "tools"


def document(name: str) -> dict[str, Any]:
    app = build_app(importlib.import_module(f"services.{name}.app").definition, Settings())
    (route,) = [r for r in app.routes if isinstance(r, APIRoute) and r.path == "/docs/asyncapi.json"]
    return dict(json.loads(asyncio.run(route.endpoint()).body))


def payload_types(doc: dict[str, Any], message: dict[str, Any]) -> set[str]:
    """The CloudEvent `type`s a message's payload admits (one model, or one of several)."""
    schemas = doc["components"]["schemas"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schemas[node["$ref"].rpartition("/")[2]]
        return node

    payload = resolve(message["payload"])
    options = [resolve(o) for o in payload.get("oneOf", payload.get("anyOf", [payload]))]
    return {o["properties"]["type"]["const"] for o in options}


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_each_consumed_topic_has_the_payloads_of_its_own_types(name: str) -> None:
    doc = document(name)
    for key, message in doc["components"]["messages"].items():
        topic, _, direction = key.partition(":")
        types = payload_types(doc, message)
        for t in types:
            assert topic in REGISTRY[t].topics, f"{name}: {key} admits {t}, which travels on {REGISTRY[t].topics}"
        assert "correlationId" not in message, key
        assert message["bindings"]["kafka"]["key"]["description"] == topics.KEYS[topic]
        assert "content-type" in message["headers"]["properties"]
        if direction.startswith("publish"):
            assert message["headers"]["properties"]["content-type"]["const"] == "application/cloudevents+json"


def test_warning_and_cases_read_designation_events_as_designation_events() -> None:
    for name in ("warning", "cases"):
        doc = document(name)
        message = doc["components"]["messages"][f"{topics.DESIGNATION_EVENTS}:consume:SubscribeMessage"]
        assert payload_types(doc, message) >= {"credit.designation.created", "credit.designation.removed"}


def test_every_document_parses_cleanly_with_the_official_asyncapi_parser(tmp_path: Path) -> None:
    """`@asyncapi/parser` (npm, pinned in deploy/tools, installed by make deps) on every service's
    document: parsed, no error and no warning."""
    node = shutil.which("node")
    assert node, "Node.js is missing: the official AsyncAPI parser runs on it"
    assert (TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir(), "run `make deps` (npm ci in deploy/tools)"
    files = []
    for name in SERVICE_PORTS:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document(name)))
        files.append(str(path))
    run = subprocess.run([node, str(TOOLS / "asyncapi-check.mjs"), *files], capture_output=True, text=True, timeout=120)
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(files), run.stderr
    for r in results:
        assert r["parsed"], r
        assert r["errors"] == [], r
        assert r["warnings"] == [], r
    assert run.returncode == 0, run.stderr
