"""`make up`'s supervisor (deploy/supervise.py) as a process: it starts a service, echoes its log
prefixed with the service's name and keeps it in `<local>/logs/<name>.log`, restarts the service
when it dies, and on Ctrl-C (SIGINT) stops it cleanly and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from credit_common.settings import Settings

from tests.support.processes import new_instance

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
OFFSET = 300  # cases on 8405


async def read_until(stream: asyncio.StreamReader, needle: str, seen: list[str], timeout: float) -> None:
    async def scan() -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"output ended before {needle!r}: {seen[-20:]}")
            seen.append(raw.decode("utf-8", "replace"))
            if needle in seen[-1]:
                return

    await asyncio.wait_for(scan(), timeout)


async def ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as c:
            return (await c.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_supervisor_starts_echoes_restarts_and_stops(stack: Settings, tmp_path: Path) -> None:
    # Its own deployment: the supervised `cases` joins no other test's group.
    env = {**os.environ, "CREDIT_LOCAL_DIR": str(tmp_path), "CREDIT_INSTANCE": new_instance()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "deploy" / "supervise.py"),
        "--only",
        "cases",
        "--port-offset",
        str(OFFSET),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        await read_until(proc.stdout, "Ctrl-C (or make down) stops everything", seen, timeout=120)
        assert any("http://127.0.0.1:8405/" in line for line in seen), seen
        assert any("cases" in line and "|" in line and "service cases started" in line for line in seen), seen
        log = (tmp_path / "logs" / "cases.log").read_text()
        assert '"event":"service cases started"' in log  # the whole JSON line is kept
        first = int((tmp_path / "run" / "cases.pid").read_text())

        # The service dies: it is started again.
        os.kill(first, signal.SIGKILL)
        await read_until(proc.stdout, "cases exited (-9); restarting", seen, timeout=30)
        for _ in range(240):
            pid_file = tmp_path / "run" / "cases.pid"
            if pid_file.exists() and int(pid_file.read_text()) != first and await ready(8405):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"not restarted: {seen[-10:]}")
        second = int((tmp_path / "run" / "cases.pid").read_text())

        # Ctrl-C: the service is stopped cleanly, then the supervisor exits 0.
        proc.send_signal(signal.SIGINT)
        await read_until(proc.stdout, "all services stopped", seen, timeout=60)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert not alive(second)
        assert any("service cases stopped" in line for line in seen)
        assert not (tmp_path / "run" / "cases.pid").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
