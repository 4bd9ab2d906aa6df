"""Benchmark plumbing: peak-RSS sampling, results beside their baselines, one CSV row per case."""

from __future__ import annotations

import asyncio
import csv
import gc
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from credit_common.db.provision import prepare, service_migrations
from credit_common.security.credentials import Signers, service_env
from credit_common.security.signing import Verifier
from credit_common.settings import get_settings
from rich.console import Console

from tests.support.database import OWNER_SECRET, RUNTIME_SECRET
from tests.support.tokens import auth_headers

console = Console(stderr=True)
CSV_FIELDS = [
    "timestamp",
    "commit",
    "case",
    "n",
    "rate",
    "unit",
    "baseline_case",
    "baseline",
    "ratio",
    "goal",
    "peak_rss_mb",
    "extra",
]


async def checkpoint_to_disk(db: Any) -> None:
    """CHECKPOINT, then the kernel's own flush of what it left dirty. The throwaway cluster runs
    with fsync off, so a checkpoint after a bulk load only hands gigabytes of dirty pages to the
    page cache; the kernel writes them back some 30 s later (vm.dirty_expire_centisecs), in the
    middle of whatever is being measured then, and reads queue behind that writeback."""
    await db.execute("CHECKPOINT")
    dirty_mb = _meminfo_mb("Dirty")
    t0 = time.perf_counter()
    await asyncio.to_thread(os.sync)
    console.print(f"  flushed {dirty_mb:,.0f} MB of dirty pages to disk in {time.perf_counter() - t0:.1f}s")


def _meminfo_mb(field: str) -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def driver_gc_paused() -> Iterator[None]:
    """Keeps the benchmark driver's own garbage collector out of a measured window. The driver
    holds sample rows, tasks and timestamps by the ten thousand; a full collection over that heap
    stopped its event loop for 100-190 ms (measured with gc.callbacks), and every request in
    flight was charged with it, the baselines' as much as the services'. The window's garbage is
    acyclic and freed by reference counting; what it leaves is collected when it ends."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


@dataclass
class Result:
    case: str
    n: int
    rate: float
    unit: str = "msg/s"
    baseline_case: str = ""
    baseline: float | None = None
    goal: float | None = None  # the ratio the issue asks for
    peak_rss_mb: float = 0.0
    extra: dict[str, float | str] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.rate / self.baseline if self.baseline else None

    def line(self) -> str:
        s = f"{self.case:<28} n={self.n:>9,}  {self.rate:>12,.0f} {self.unit}"
        if self.baseline:
            s += f"   baseline {self.baseline_case} {self.baseline:>12,.0f}   ratio {self.ratio:.2f}"
            if self.goal is not None:
                s += f" (goal >= {self.goal:.2f}: {'met' if (self.ratio or 0) >= self.goal else 'NOT met'})"
        if self.peak_rss_mb:
            s += f"   peak RSS {self.peak_rss_mb:.0f} MB"
        for k, v in self.extra.items():
            s += f"   {k}={v}"
        return s


def write_csv(path: Path, results: list[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    commit = git_commit()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        for r in results:
            w.writerow(
                {
                    "timestamp": stamp,
                    "commit": commit,
                    "case": r.case,
                    "n": r.n,
                    "rate": f"{r.rate:.1f}",
                    "unit": r.unit,
                    "baseline_case": r.baseline_case,
                    "baseline": f"{r.baseline:.1f}" if r.baseline else "",
                    "ratio": f"{r.ratio:.3f}" if r.ratio else "",
                    "goal": f"{r.goal:.2f}" if r.goal is not None else "",
                    "peak_rss_mb": f"{r.peak_rss_mb:.1f}",
                    "extra": ";".join(f"{k}={v}" for k, v in r.extra.items()),
                }
            )


class RssSampler:
    """Samples this process's RSS every 50 ms; `peak_mb` is the largest seen while active."""

    def __init__(self, pid: int | None = None) -> None:
        self._proc = psutil.Process(pid or os.getpid())
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._proc.memory_info().rss)
            await asyncio.sleep(0.05)

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6

    @asynccontextmanager
    async def active(self) -> AsyncIterator[RssSampler]:
        self.peak = self._proc.memory_info().rss
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            self.peak = max(self.peak, self._proc.memory_info().rss)


class CpuShare:
    """Where the machine's cores went over a window: CPU seconds of each group of processes (ours
    by pid, PostgreSQL's and Kafka's by name) over the window's wall seconds, 1.0 being one core
    busy, beside the whole machine's busy time. A profile of a run that is CPU-bound says which
    process the cores went to. A process of a group that ends inside the window (none in a drain:
    the services keep their pooled connections) is counted in `other`."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self._pids = {group: list(p) for group, p in pids.items()}
        self._t0 = 0.0
        self._busy0 = 0.0
        self._start: dict[int, float] = {}

    @staticmethod
    def _group(p: psutil.Process, own: dict[int, str]) -> str | None:
        if p.pid in own:
            return own[p.pid]
        try:
            name = p.name()
            if name.startswith("postgres"):
                return "postgres"
            if name == "java" and any("kafka" in a for a in p.cmdline()):
                return "kafka"
        except psutil.Error:
            return None
        return None

    def _sample(self) -> dict[int, tuple[str, float]]:
        own = {pid: group for group, pids in self._pids.items() for pid in pids}
        out: dict[int, tuple[str, float]] = {}
        for p in psutil.process_iter():
            group = self._group(p, own)
            if group is None:
                continue
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            out[p.pid] = (group, t.user + t.system)
        return out

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def add(self, group: str, pid: int) -> None:
        """A process of ours started in the window: all its CPU time counts."""
        self._pids.setdefault(group, []).append(pid)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._busy0 = self._busy()
        self._start = {pid: cpu for pid, (_, cpu) in self._sample().items()}

    def stop(self) -> dict[str, float]:
        """Cores used per group over the window, with `machine` (all busy cores) and `other`."""
        wall = time.perf_counter() - self._t0
        used: dict[str, float] = {group: 0.0 for group in self._pids}
        used |= {"postgres": 0.0, "kafka": 0.0}
        for pid, (group, cpu) in self._sample().items():
            used[group] += cpu - self._start.get(pid, 0.0)
        shares = {g: v / wall for g, v in used.items()}
        shares["machine"] = (self._busy() - self._busy0) / wall
        shares["other"] = max(0.0, shares["machine"] - sum(v for g, v in shares.items() if g != "machine"))
        return shares

    @staticmethod
    def line(shares: dict[str, float]) -> str:
        return " ".join(f"{g}:{v:.2f}" for g, v in shares.items())


class ServiceUnderTest:
    """One of our services as a real process (`python -m services.<name>`), its RSS sampled every
    100 ms from start to stop; `started_at` is when the process was launched."""

    def __init__(self, name: str, port: int, env: dict[str, str] | None = None, *, module: str | None = None) -> None:
        self.name = name  # also names its log file
        self.module = module or name  # python -m services.<module>
        self.port = port
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.peak_rss = 0
        self._sampler: asyncio.Task[None] | None = None
        self.started_at = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(os.environ.get("CREDIT_LOCAL_DIR", ".local")) / "logs" / f"bench-{self.name}.log"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss / 1e6

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"the {self.name} service is not started"
        return self.proc.pid

    async def start(self) -> None:
        settings = get_settings().model_copy(update={"credit_instance": self.env.get("CREDIT_INSTANCE", "")})
        db = await prepare(
            settings.database_url,
            settings.schema_of(self.module),
            service_migrations(self.module),
            password=RUNTIME_SECRET,
            owner_password=OWNER_SECRET,
        )  # as the stack does: the service works as its runtime role
        env = {
            **service_env(self.module),
            "DATABASE_URL": db.url,
            "CREDIT_HTTP_PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
            **self.env,
        }
        self.started_at = time.perf_counter()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{self.module}", env=env, stdout=log, stderr=log
            )
        self._sampler = asyncio.create_task(self._sample())
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            for _ in range(600):
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert self.proc.returncode is None, f"the {self.name} service exited: {self.log_tail()}"
                await asyncio.sleep(0.1)
        raise AssertionError(f"the {self.name} service did not become ready")

    def reset_peak(self) -> None:
        self.peak_rss = 0

    async def gc_pauses(self) -> tuple[int, float]:
        """(collections, seconds paused) of the service's cyclic garbage collector so far, all
        generations, from its own `credit_gc_pause_seconds`: read before and after a window to
        see what the service's collector cost inside it."""
        async with httpx.AsyncClient(base_url=self.base_url, headers=auth_headers()) as client:
            text = (await client.get("/metrics")).text
        count, total = 0, 0.0
        for line in text.splitlines():
            if line.startswith("credit_gc_pause_seconds_count"):
                count += int(float(line.rsplit(" ", 1)[1]))
            elif line.startswith("credit_gc_pause_seconds_sum"):
                total += float(line.rsplit(" ", 1)[1])
        return count, total

    async def _sample(self) -> None:
        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        while True:
            try:
                self.peak_rss = max(self.peak_rss, p.memory_info().rss)
            except psutil.Error:
                return
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 60)


SIGNERS = Signers()  # CREDIT_CREDENTIALS_DIR (deploy/bench.sh) or .local/credentials


def envelope_bytes(doc: dict[str, Any]) -> bytes:
    """A request as a department sends it: signed by its source unit's key (contracts.md,
    Security), serialised. Platform events (no key for their source) go out as they are."""
    return orjson.dumps(SIGNERS.sign(doc))


def signature_cost_us(requests: list[bytes], passes: int = 3) -> float:
    """What checking a request's signature costs the service, in µs of one core: the verifier the
    bus runs (RFC 8785 canonical form, then Ed25519) over `requests` as the drain sent them, its
    key parsed once as the service keeps it; the best of `passes` (the least disturbed)."""
    docs = [orjson.loads(r) for r in requests]
    signer = SIGNERS.for_source(str(docs[0]["source"]))
    assert signer is not None, f"no key for {docs[0]['source']}"
    record = signer.record(datetime(2000, 1, 1, tzinfo=UTC))
    verifier = Verifier(lambda kid: record if kid == record.code else None)
    at = datetime.now(UTC)
    best = float("inf")
    with driver_gc_paused():
        for _ in range(passes):
            t0 = time.perf_counter()
            for doc in docs:
                assert verifier.check(doc, at) is None
            best = min(best, (time.perf_counter() - t0) / len(docs))
    return best * 1e6
