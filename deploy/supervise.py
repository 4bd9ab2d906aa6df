#!/usr/bin/env python3
"""The platform's services as supervised processes (what `make up` runs).

    deploy/supervise.py [--only NAME ...] [--port-offset N] [--detach]

Starts each service (`python -m services.<name>` on its contract port + offset), keeps its log in
`.local/logs/<name>.log` and echoes it to the terminal prefixed with the service's name (JSON log
lines shortened to time, level and message), restarts a service that dies (with a growing pause,
at most five times in ten minutes), and, once every service answers `/health/ready`, prints the
dashboards' addresses. Ctrl-C (SIGINT) or SIGTERM (`make down`) stops every service cleanly
(SIGTERM, each finishes its batch and drains its outbox; SIGKILL after 30 s) and then exits.

`--stop-stack` (the foreground `make up`) then stops Kafka and PostgreSQL too.
`--detach` starts the supervisor in the background (log: `.local/logs/supervisor.log`), waits
until the services are ready and returns; `.local/run/supervisor.pid` names it. The pid of each
service is kept in `.local/run/<name>.pid` while it runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from pathlib import Path

from credit_common.db.provision import prepare, service_migrations
from credit_common.security.credentials import service_env
from credit_common.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
LOCAL = Path(os.environ.get("CREDIT_LOCAL_DIR", ROOT / ".local"))
if not LOCAL.is_absolute():
    LOCAL = ROOT / LOCAL
RUN, LOGS = LOCAL / "run", LOCAL / "logs"
# Each service acts as its own principal (service:<name>) with the credentials the stack wrote
# (the stack's, wherever this supervisor keeps its logs and pid files).
os.environ.setdefault("CREDIT_CREDENTIALS_DIR", str(ROOT / ".local" / "credentials"))
SERVICES = {"designation": 8101, "sharing": 8102, "warning": 8103, "objection": 8104, "cases": 8105}
COLOURS = {"designation": 36, "sharing": 32, "warning": 33, "objection": 35, "cases": 34}
STOP_GRACE_S = 30.0
READY_TIMEOUT_S = float(os.environ.get("CREDIT_SERVICE_WAIT", "120"))
MAX_RESTARTS, RESTART_WINDOW_S = 5, 600.0


def say(message: str) -> None:
    print(f"\033[1m[platform]\033[0m {message}", flush=True)


def short(line: str) -> str:
    """A JSON log line as `HH:MM:SS level message`; anything else as it is."""
    try:
        doc = json.loads(line)
    except ValueError:
        return line
    if not isinstance(doc, dict) or "event" not in doc:
        return line
    stamp = str(doc.get("timestamp", ""))[11:19]
    level = str(doc.get("level", "")).upper()
    return f"{stamp} {level:<7} {doc['event']}"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
            return bool(r.status == 200)
    except Exception:
        return False


class Child:
    """One service: its process, its log, its restarts."""

    def __init__(self, name: str, port: int, echo: bool) -> None:
        self.name, self.port, self.echo = name, port, echo
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts: deque[float] = deque()
        self.stopping = False
        self.database_url: str | None = None  # its runtime role's login, made before its first start
        self.prefix = f"\033[{COLOURS.get(name, 37)}m{name:<11}|\033[0m "

    @property
    def pid_file(self) -> Path:
        return RUN / f"{self.name}.pid"

    async def start(self) -> None:
        if self.database_url is None:
            # As the stack's admin: the schema, its owner and runtime roles (new secrets), the
            # migrations applied as the owner. The service gets the runtime role's login only.
            settings = get_settings()
            db = await prepare(settings.database_url, settings.schema_of(self.name), service_migrations(self.name))
            self.database_url = db.url
        env = {
            **service_env(self.name),
            "DATABASE_URL": self.database_url,
            "CREDIT_HTTP_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"services.{self.name}",
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the services in order
        )
        self.pid_file.write_text(str(self.proc.pid))

    async def pump(self) -> None:
        """Copy the service's output to its log file and (prefixed) to the terminal until it exits."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        with (LOGS / f"{self.name}.log").open("ab") as log:
            async for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                if self.echo:
                    print(self.prefix + short(raw.decode("utf-8", "replace").rstrip()), flush=True)

    async def run(self) -> None:
        """Run the service, restarting it when it dies (not when it is being stopped)."""
        while True:
            await self.start()
            await self.pump()
            code = await self.proc.wait() if self.proc else 0
            self.pid_file.unlink(missing_ok=True)
            if self.stopping:
                return
            now = time.monotonic()
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
                self.restarts.popleft()
            if len(self.restarts) >= MAX_RESTARTS:
                say(f"{self.name} exited ({code}) {MAX_RESTARTS} times in {RESTART_WINDOW_S:.0f}s: not restarting it")
                return
            pause = 2 ** len(self.restarts)
            self.restarts.append(now)
            say(f"{self.name} exited ({code}); restarting in {pause}s (log: {LOGS / (self.name + '.log')})")
            await asyncio.sleep(pause)

    async def stop(self) -> None:
        self.stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            say(f"{self.name} did not stop in {STOP_GRACE_S:.0f}s: killing it")
            proc.kill()
            await proc.wait()


async def supervise(names: list[str], offset: int, echo: bool) -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    children = [Child(n, SERVICES[n] + offset, echo) for n in names]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    say(f"starting {', '.join(names)} (logs in {LOGS})")
    tasks = [asyncio.create_task(c.run(), name=c.name) for c in children]
    waiter = asyncio.create_task(stop.wait())
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = {c.name for c in children}
    while pending and not stop.is_set() and time.monotonic() < deadline:
        for c in children:
            if c.name in pending and await asyncio.to_thread(ready, c.port):
                pending.discard(c.name)
        await asyncio.sleep(0.5)
    if pending and not stop.is_set():
        say(f"not ready within {READY_TIMEOUT_S:.0f}s: {', '.join(sorted(pending))} (see their logs)")
    elif not stop.is_set():
        (RUN / "supervisor.ready").write_text(str(os.getpid()))
        say("ready. Dashboards:")
        for c in children:
            say(f"  {c.name:<11} http://127.0.0.1:{c.port}/   (API docs /docs, AsyncAPI /docs/asyncapi)")
        say("Ctrl-C (or make down) stops everything.")
    await waiter
    say("stopping the services")
    (RUN / "supervisor.ready").unlink(missing_ok=True)
    await asyncio.gather(*(c.stop() for c in children))
    for t in tasks:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
    say("all services stopped")
    return 0 if not pending else 1


def detach(argv: list[str]) -> int:
    """Start the supervisor in the background and wait until it reports ready."""
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    pid_file, ready_file = RUN / "supervisor.pid", RUN / "supervisor.ready"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(pid_file.read_text()), 0)
            say(f"already running (pid {pid_file.read_text()})")
            return 0
    ready_file.unlink(missing_ok=True)
    log = (LOGS / "supervisor.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, __file__, *[a for a in argv if a != "--detach"], "--quiet"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + READY_TIMEOUT_S + 10
    while time.monotonic() < deadline:
        if ready_file.exists():
            say(f"services ready (supervisor pid {proc.pid}, log {LOGS / 'supervisor.log'})")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    say(f"the services did not become ready; last lines of {LOGS / 'supervisor.log'}:")
    print("\n".join((LOGS / "supervisor.log").read_text(errors="replace").splitlines()[-30:]))
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(SERVICES), default=list(SERVICES))
    parser.add_argument("--port-offset", type=int, default=0, help="add to every contract port")
    parser.add_argument("--detach", action="store_true", help="run in the background; return once ready")
    parser.add_argument("--quiet", action="store_true", help="do not echo the services' logs")
    parser.add_argument("--stop-stack", action="store_true", help="also stop Kafka and PostgreSQL at the end")
    args = parser.parse_args(argv)
    if args.detach:
        return detach(argv)
    if not args.quiet:
        (RUN).mkdir(parents=True, exist_ok=True)
        (RUN / "supervisor.pid").write_text(str(os.getpid()))
    try:
        code = asyncio.run(supervise(args.only, args.port_offset, echo=not args.quiet))
        if args.stop_stack:
            say("stopping Kafka and PostgreSQL")
            subprocess.run([str(ROOT / "deploy" / "stack.sh"), "down"], check=False)
        return code
    finally:
        pid_file = RUN / "supervisor.pid"
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file.read_text()) == os.getpid():
                pid_file.unlink()


if __name__ == "__main__":
    sys.exit(main())
