"""`make chaos`: each fault injected under a steady load through all five services, then every
request and every list change checked against the oracle; one row per fault in
tests/perf/results/chaos.csv (`timestamp, commit, fault, requests, lost, duplicated, unanswered,
recovery_s, notes`; `recovery_s` from the fault's end until every consumer group's lag is zero,
every outbox empty and every request of the fault answered). Run by `deploy/chaos.sh`, which
gives it a throwaway stack; `--short` is the run inside `make test`.

    deploy/chaos.sh [--short] [--faults kill9_sharing,broker_restart] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit_common.messaging.lag import GroupLag
from credit_common.settings import get_settings
from rich.console import Console

from tests.chaos.fuzz import Fuzzer, Hostile
from tests.chaos.load import Load
from tests.chaos.oracle import Oracle, Verdict, judge_fuzz, sharing_seqs
from tests.chaos.platform import SERVICES, Platform, pause, resume, stack
from tests.perf.harness import git_commit
from tests.support.processes import ARTIFACTS
from tests.support.tokens import auth_headers

console = Console(stderr=True, soft_wrap=True)
RESULTS = Path(__file__).resolve().parents[1] / "perf" / "results" / "chaos.csv"
FIELDS = ["timestamp", "commit", "fault", "requests", "lost", "duplicated", "unanswered", "recovery_s", "notes"]
RECOVERY_LIMIT_S = 60.0
#: Records a service's groups must hold uncommitted when it is killed: work in hand.
MID_BATCH = 20
#: The faults, in the order a run injects them (the issue's names; `zombie_relay` and `fuzz_http`
#: are not built yet).
FAULTS = (
    "kill9_designation",
    "kill9_sharing",
    "kill9_warning",
    "kill9_objection",
    "kill9_cases",
    "kill9_relay_leader",
    "broker_restart",
    "postgres_restart",
    "postgres_kill9",
    "stalled_consumer",
    "zombie_relay",
    "fuzz_kafka",
    "fuzz_http",
)


@dataclass(frozen=True)
class Shape:
    rate: float  # requests/s of the steady load
    warmup_s: float  # load before the fault
    outage_s: float  # a server stopped this long
    stall_s: float  # a consumer stopped this long (past its session timeout and poll interval)
    cut_s: float  # the relay leader cut off from PostgreSQL this long (past its lease)
    burst: int  # requests sent at once just before a kill: a batch in hand
    fuzz: int  # hostile messages of fuzz_kafka
    fuzz_rate: float  # hostile messages per second
    fuzz_pool: int  # data documents drawn from each request type's JSON Schema
    http_examples: int  # schemathesis examples per operation of each service's OpenAPI


FULL = Shape(
    rate=40,
    warmup_s=15,
    outage_s=30,
    stall_s=30,
    cut_s=30,
    burst=400,
    fuzz=100_000,
    fuzz_rate=2000,
    fuzz_pool=150,
    http_examples=100,
)
SHORT = Shape(
    rate=25,
    warmup_s=6,
    outage_s=10,
    stall_s=25,
    cut_s=20,
    burst=200,
    fuzz=3000,
    fuzz_rate=600,
    fuzz_pool=25,
    http_examples=8,
)


class Chaos:
    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.bootstrap = get_settings().kafka_bootstrap_servers
        self.platform = Platform()
        self.load = Load(self.bootstrap, shape.rate, seed=random.randrange(1 << 30))
        self.oracle = Oracle(self.bootstrap)
        self.lag = GroupLag(self.bootstrap, client_id="credit-chaos-lag")
        self.notes: list[str] = []
        self.fault_ended: float | None = None  # set by a fault whose end comes before its function returns
        self.fuzzer: Fuzzer | None = None
        self.fuzz_sent: list[tuple[str, str | None, tuple[str, int, int]]] = []
        self.http_checked: tuple[int, int] | None = None  # (exchanges, 5xx or unanswered) of fuzz_http

    # ------------------------------------------------------------------ faults

    async def kill9(self, name: str, *, settle_s: float) -> None:
        """kill -9 of a service with a batch in hand (the burst has reached it: its groups hold
        at least MID_BATCH records not yet committed), then the restart a supervisor makes."""
        self.load.burst(self.shape.burst)
        deadline = time.monotonic() + settle_s + 5.0
        lag_before = await self._lag_of(name)
        while lag_before < MID_BATCH and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            lag_before = await self._lag_of(name)
        await self.platform.procs[name].kill()
        self.fault_ended = time.monotonic()  # the restart is part of the recovery
        self.notes.append(f"lag at kill {lag_before}")
        await self.platform.procs[name].start(timeout=120)

    async def kill9_relay_leader(self) -> None:
        leader = await self.platform.relay_leader()
        if leader is None:
            raise AssertionError("no designation instance leads the outbox relay")
        self.load.burst(self.shape.burst)
        await asyncio.sleep(0.4)  # the relay is publishing the burst's events
        pending = await self.platform.outbox_pending()
        await self.platform.procs[leader].kill()
        self.fault_ended = time.monotonic()
        self.notes.append(f"killed {leader} with {pending} outbox rows pending")
        await asyncio.sleep(2.0)  # the other instance takes the lead (follower poll) before the restart
        now = await self.platform.relay_leader()
        self.notes.append(f"leader after: {now}")
        await self.platform.procs[leader].start(timeout=120)

    async def broker_restart(self) -> None:
        await asyncio.to_thread(stack, "stop-kafka")
        await asyncio.sleep(self.shape.outage_s)
        await asyncio.to_thread(stack, "start-kafka")

    async def postgres_restart(self) -> None:
        await asyncio.to_thread(stack, "stop-postgres")
        await asyncio.sleep(self.shape.outage_s)
        await asyncio.to_thread(stack, "start-postgres")

    async def postgres_kill9(self) -> None:
        await asyncio.to_thread(stack, "kill-postgres")
        await asyncio.sleep(min(5.0, self.shape.outage_s))
        await asyncio.to_thread(stack, "start-postgres")

    async def stalled_consumer(self) -> None:
        """A designation instance stopped (SIGSTOP) with a batch in hand for longer than its
        session timeout and poll interval: its partitions go to the other instance, then it wakes
        and finds itself out of the group."""
        leader = await self.platform.relay_leader()
        name = "designation-2" if leader == "designation" else "designation"
        proc = self.platform.procs[name]
        self.load.burst(self.shape.burst)
        await asyncio.sleep(0.2)
        pause(proc)
        self.notes.append(f"stopped {name} for {self.shape.stall_s:.0f}s")
        try:
            await asyncio.sleep(self.shape.stall_s)
        finally:
            resume(proc)

    async def zombie_relay(self) -> None:
        """The relay leader cut off from PostgreSQL (Toxiproxy: nothing passes, no connection
        closes) while it keeps the broker: the server ends its lease, another instance leads,
        and the cut-off one must not publish on after that."""
        proxy = self.platform.toxiproxy
        if not proxy.available:
            raise AssertionError("toxiproxy is not built (deploy/chaos.sh builds it; CHAOS_TOXIPROXY names it)")
        leader = await self.platform.relay_leader()
        if leader is None:
            raise AssertionError("no designation instance leads the outbox relay")
        other = "designation-2" if leader == "designation" else "designation"
        self.load.burst(self.shape.burst)
        await asyncio.sleep(0.3)
        await proxy.cut(f"pg-{leader}")
        cut_at = time.monotonic()
        passed: float | None = None
        try:
            while time.monotonic() - cut_at < self.shape.cut_s:
                if passed is None and await self.platform.leads(other):
                    passed = time.monotonic() - cut_at
                await asyncio.sleep(0.5)
        finally:
            await proxy.heal(f"pg-{leader}")
        self.notes.append(
            f"{leader} cut off from PostgreSQL for {self.shape.cut_s:.0f}s; "
            + (f"{other} led after {passed:.1f}s" if passed is not None else f"{other} never led during the cut")
        )

    async def fuzz_kafka(self) -> None:
        """Hostile messages across every request topic beside the steady load (tests/chaos/fuzz.py)."""
        assert self.fuzzer is not None
        sender, fuzzer = self.load.sender, self.fuzzer
        sent: list[tuple[Hostile, asyncio.Task[Any]]] = []
        kinds: Counter[str] = Counter()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(self.shape.fuzz):
            h = fuzzer.next()
            kinds[h.kind] += 1
            sent.append((h, sender.send_soon(h.topic, h.value, key=h.key, headers=h.headers)))
            ahead = start + (i + 1) / self.shape.fuzz_rate - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
            if i % 10_000 == 0 and i:
                console.print(f"    {i:,} hostile messages sent")
        await sender.flush()
        self.fuzz_sent = []
        for h, task in sent:
            md = task.result()
            self.fuzz_sent.append((h.kind, h.id, (h.topic, md.partition, md.offset)))
        self.notes.append("kinds " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))

    async def fuzz_http(self) -> None:
        """schemathesis against every service's OpenAPI (every operation, NULs allowed in what
        it generates) beside the steady load: no answer may be a 5xx, none may go unanswered.
        Every exchange is read back from schemathesis' HAR report."""
        tool = Path(sys.executable).parent / "schemathesis"
        token = auth_headers()["Authorization"]
        exchanges = failures = 0
        per_service: list[str] = []
        for name in SERVICES:
            proc = self.platform.procs[name]
            har = ARTIFACTS / f"schemathesis-{name}.har"
            har.unlink(missing_ok=True)
            run = await asyncio.create_subprocess_exec(
                str(tool), "run", f"{proc.base_url}/openapi.json",
                "--checks", "not_a_server_error",
                "--max-examples", str(self.shape.http_examples),
                "--header", f"Authorization: {token}",
                "--generation-allow-x00", "true",
                "--phases", "examples,coverage,fuzzing",
                "--request-timeout", "20",
                "--workers", "2",
                "--continue-on-failure",
                "--suppress-health-check", "all",
                "--report", "har", "--report-har-path", str(har),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await run.communicate()
            (ARTIFACTS / f"schemathesis-{name}.txt").write_bytes(output)
            entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
            bad = [e for e in entries if not e["response"]["status"] or e["response"]["status"] >= 500]
            exchanges += len(entries)
            failures += len(bad)
            first = ""
            if bad:
                request, status = bad[0]["request"], bad[0]["response"]["status"]
                first = f" e.g. {request['method']} {request['url'][:100]} -> {status}"
            per_service.append(f"{name} {len(entries)} exchanges, {len(bad)} 5xx or unanswered{first}")
            if not entries:
                raise AssertionError(
                    f"schemathesis made no request to {name}: {output.decode(errors='replace')[-2000:]}"
                )
        self.http_checked = (exchanges, failures)
        self.notes.append("; ".join(per_service))

    def faults(self) -> dict[str, Callable[[], Awaitable[None]]]:
        def kill(name: str, settle_s: float) -> Callable[[], Awaitable[None]]:
            return lambda: self.kill9(name, settle_s=settle_s)

        faults: dict[str, Callable[[], Awaitable[None]]] = {
            "kill9_designation": kill("designation", 0.2),
            "kill9_sharing": kill("sharing", 0.8),
            "kill9_warning": kill("warning", 0.8),
            "kill9_objection": kill("objection", 0.3),
            "kill9_cases": kill("cases", 0.5),
            "kill9_relay_leader": self.kill9_relay_leader,
            "broker_restart": self.broker_restart,
            "postgres_restart": self.postgres_restart,
            "postgres_kill9": self.postgres_kill9,
            "stalled_consumer": self.stalled_consumer,
            "zombie_relay": self.zombie_relay,
            "fuzz_kafka": self.fuzz_kafka,
            "fuzz_http": self.fuzz_http,
        }
        assert tuple(faults) == FAULTS
        return faults

    # ------------------------------------------------------------------ one fault, judged

    async def _lag_of(self, name: str) -> int:
        try:
            return sum((await self.lag.total(self.platform.groups_of(name))).values())
        except Exception:
            return -1

    async def run_fault(self, fault: str) -> tuple[Verdict, float | None]:
        self.notes = []
        self.fault_ended = None
        self.fuzz_sent = []
        self.http_checked = None
        self.load.window = fault
        self.load.steady()
        await asyncio.sleep(self.shape.warmup_s)
        console.print(f"[bold]{fault}[/]: injecting under {self.shape.rate:g} requests/s")
        await self.faults()[fault]()
        ended = self.fault_ended or time.monotonic()
        await self.load.hold()
        recovery = await self._recovered(fault, since=ended)
        verdict = self.oracle.judge(
            self.load.of(fault), self.platform.schemas["sharing"], await sharing_seqs(self.platform.schemas["sharing"])
        )
        if self.fuzz_sent:
            unaccounted, duplicated, missing = judge_fuzz(self.oracle, self.fuzz_sent)
            verdict.requests += len(self.fuzz_sent)
            verdict.unanswered += unaccounted
            verdict.add("hostile messages", duplicated=duplicated)
            verdict.notes.append(
                f"hostile {len(self.fuzz_sent)}: {unaccounted} neither answered nor dead-lettered"
                + (f" ({', '.join(f'{k} {n}' for k, n in missing.most_common())})" if missing else "")
            )
        if self.http_checked is not None:
            exchanges, failures = self.http_checked
            verdict.requests += exchanges
            verdict.unanswered += failures
        for name, proc in self.platform.procs.items():
            if proc.proc is None or proc.proc.returncode is not None:
                verdict.lost += 1
                verdict.notes.append(f"{name} stopped")
        verdict.notes.extend(self.notes)
        sender = self.load.sender
        verdict.notes.append(
            f"copies on the wire {self.oracle.copies}; sender retries {sender.retries}, renewals {sender.renewals}"
        )
        return verdict, recovery

    async def _recovered(self, fault: str, *, since: float, timeout: float = 240.0) -> float | None:
        """Seconds from `since` until the platform is quiet twice a second apart: every group's
        lag zero, every outbox empty, every request sent, every request of `fault` answered,
        every process ready. None at the timeout."""
        first_quiet: float | None = None
        sent = self.load.of(fault)
        said = since
        while time.monotonic() - since < timeout:
            busy = await self._busy(sent)
            now = time.monotonic()
            if not busy:
                if first_quiet is not None and now - first_quiet >= 1.0:
                    return first_quiet - since
                first_quiet = first_quiet or now
            else:
                first_quiet = None
                if now - said > 10:
                    console.print(f"    {now - since:.0f}s after the fault: {busy}")
                    said = now
            await asyncio.sleep(0.5)
        return None

    async def _busy(self, sent: dict[str, str]) -> str:
        """What still moves (empty when the platform is quiet)."""
        stopped = [name for name, p in self.platform.procs.items() if p.proc is None or p.proc.returncode is not None]
        if stopped:
            return f"stopped: {', '.join(stopped)}"
        if self.load.sender.in_flight:
            return f"{self.load.sender.in_flight} requests not yet sent ({self.load.sender.last_error})"
        try:
            lags = await self.lag.total(self.platform.groups())
            if any(lags.values()):
                return "lag " + ", ".join(f"{g} {n}" for g, n in lags.items() if n)
            pending = await self.platform.outbox_pending()
            if pending:
                return f"{pending} outbox rows"
        except Exception as exc:
            return f"cannot read lag or outboxes: {type(exc).__name__}: {exc}"
        if not await self.oracle.caught_up():
            return "the oracle is reading"
        unanswered = sum(1 for rid in sent if not self.oracle.answers.get(rid))
        return f"{unanswered} requests unanswered" if unanswered else ""

    # ------------------------------------------------------------------ the run

    async def run(self, faults: list[str], out: Path) -> int:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise SystemExit(f"unknown faults: {', '.join(sorted(unknown))}; known: {', '.join(self.faults())}")
        if "fuzz_kafka" in faults:
            console.print(
                f"[bold]chaos[/]: drawing {self.shape.fuzz_pool} documents per request type from the JSON Schemas"
            )
            self.fuzzer = Fuzzer(pool=self.shape.fuzz_pool, seed=random.randrange(1 << 30))
        console.print(f"[bold]chaos[/]: starting the platform (deployment {self.platform.instance})")
        failures = 0
        commit = git_commit()
        try:
            await self.platform.start()
            await self.lag.start()
            await self.oracle.start()
            await self.load.start()
            for fault in faults:
                verdict, recovery = await self.run_fault(fault)
                row = {
                    "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                    "commit": commit,
                    "fault": fault,
                    "requests": verdict.requests,
                    "lost": verdict.lost,
                    "duplicated": verdict.duplicated,
                    "unanswered": verdict.unanswered,
                    "recovery_s": "" if recovery is None else f"{recovery:.1f}",
                    "notes": "; ".join(verdict.notes),
                }
                bad = (
                    verdict.lost
                    or verdict.duplicated
                    or verdict.unanswered
                    or recovery is None
                    or recovery > RECOVERY_LIMIT_S
                )
                failures += bool(bad)
                colour = "red" if bad else "green"
                console.print(
                    f"[{colour}]{fault:<20}[/] requests {verdict.requests:>6}  lost {verdict.lost}  duplicated "
                    f"{verdict.duplicated}  unanswered {verdict.unanswered}  recovery {row['recovery_s'] or 'never'} s"
                    f"\n    {row['notes']}"
                )
                write_row(out, row)
                if recovery is None:
                    console.print(
                        "[red]the platform did not recover; the faults after it would be judged on a broken platform[/]"
                    )
                    for proc in self.platform.procs.values():
                        console.print(proc.troubles())
                    break
        finally:
            # Each step on its own: the services this run started must never outlive it.
            for step in (self.load.stop, self.oracle.stop, self.lag.stop, self.platform.stop):
                try:
                    await step()
                except Exception as exc:
                    console.print(f"[yellow]cleanup: {step.__qualname__} failed: {exc!r}[/]")
        return 1 if failures else 0


def write_row(out: Path, row: dict[str, object]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists() or out.stat().st_size == 0
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--short", action="store_true", help="shorter outages and a lighter load (the run inside make test)"
    )
    parser.add_argument("--faults", default="", help="comma-separated fault names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The harness's own clients lose the broker on purpose (broker_restart): their reconnect noise
    # is not news. The services' logs (tests/artifacts/) keep theirs.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def run() -> int:
        chaos = Chaos(SHORT if args.short else FULL)
        faults = [f for f in args.faults.split(",") if f] or list(FAULTS)
        # SIGTERM (a timeout, Ctrl-C of the script around it) ends the run through its cleanup:
        # the services it started never outlive it.
        main_task = asyncio.current_task()
        assert main_task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, main_task.cancel)
        try:
            return await chaos.run(faults, args.out)
        except asyncio.CancelledError:
            console.print("[red]chaos run interrupted[/]")
            return 130

    sys.exit(asyncio.run(run()))


if __name__ == "__main__":
    main()
