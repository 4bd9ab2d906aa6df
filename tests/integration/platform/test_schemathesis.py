"""Schemathesis with every check (`--checks all`) against each of the five services as processes
(ports 18701-18705), from the OpenAPI document each serves: generated requests, valid and not,
answered as the document says (status codes, content types, response schemas, problem details),
nothing a 500. Departments generate their clients from these documents. One setting, with its
reason, is in `deploy/tools/schemathesis.toml`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from credit_common.settings import Settings

from tests.support.processes import ServiceProcess, new_instance, running
from tests.support.tokens import auth_headers

pytestmark = pytest.mark.integration

PORTS = {"designation": 18701, "sharing": 18702, "warning": 18703, "objection": 18704, "cases": 18705}
INSTANCE = new_instance()
CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "tools" / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 15  # per operation: a few seconds a service, in every make test


@pytest.fixture(scope="module")
async def services(stack: Settings) -> AsyncIterator[dict[str, ServiceProcess]]:
    procs = {name: ServiceProcess(name, port, instance=INSTANCE) for name, port in PORTS.items()}
    async with running(procs):
        yield procs


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", PORTS)
async def test_every_check_passes_against_the_running_service(
    services: dict[str, ServiceProcess], name: str, tmp_path: Path
) -> None:
    token = auth_headers()["Authorization"]
    run = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"http://127.0.0.1:{PORTS[name]}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: {token}",
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,fuzzing",
        "--seed",
        "20261204",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await run.communicate()
    report = out.decode(errors="replace")
    assert run.returncode == 0, report[-6000:]
    assert " passed" in report
