"""Toxiproxy (Shopify's TCP proxy for fault injection, built from the Go module proxy by
deploy/chaos.sh) between a service instance and PostgreSQL: the `zombie_relay` fault cuts an
instance off from the database while it keeps its broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import httpx

API_PORT = 31474


class Toxiproxy:
    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get("CHAOS_TOXIPROXY", "")
        self.api = f"http://127.0.0.1:{API_PORT}"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def available(self) -> bool:
        return bool(self.binary) and Path(self.binary).is_file()

    async def start(self, log: Path) -> None:
        handle = log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-host", "127.0.0.1", "-port", str(API_PORT), stdout=handle, stderr=handle
        )
        handle.close()
        async with httpx.AsyncClient(base_url=self.api, timeout=2.0) as client:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/version")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"toxiproxy did not start; see {log}")

    async def proxy(self, name: str, listen: str, upstream: str) -> None:
        async with httpx.AsyncClient(base_url=self.api, timeout=5.0) as client:
            await client.delete(f"/proxies/{name}")  # what an earlier run left, if any
            r = await client.post(
                "/proxies", json={"name": name, "listen": listen, "upstream": upstream, "enabled": True}
            )
            r.raise_for_status()

    async def cut(self, name: str) -> None:
        """Nothing gets through either way and no connection closes: a partition, not a crash."""
        async with httpx.AsyncClient(base_url=self.api, timeout=5.0) as client:
            for stream in ("upstream", "downstream"):
                r = await client.post(
                    f"/proxies/{name}/toxics",
                    json={
                        "name": f"cut-{stream}",
                        "type": "timeout",
                        "stream": stream,
                        "toxicity": 1.0,
                        "attributes": {"timeout": 0},
                    },
                )
                r.raise_for_status()

    async def heal(self, name: str) -> None:
        async with httpx.AsyncClient(base_url=self.api, timeout=5.0) as client:
            for stream in ("upstream", "downstream"):
                await client.delete(f"/proxies/{name}/toxics/cut-{stream}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5)
