"""Historical import end to end: `credit-import` (its library entry point, and the command as a
process) signs and sends a unit's file; the five services run as processes of one deployment.
What it must give is an oracle's answer: the lists, the history `as_of` the entries' own dates
(known from the import on, not before), the warning list, every consumer's copy, and exactly the
refusals the file earns. An import killed mid-way and run again gives what one run gives."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from credit_common.clock import local_day
from credit_common.imports.client import run_import
from credit_common.imports.files import file_digest
from credit_common.imports.results import ImportSummary
from credit_common.imports.state import state_path
from credit_common.security import credentials
from credit_common.settings import Settings

from services.designation.imports import import_id
from tests.support.events import company
from tests.support.imports import UNIT, entries, is_active, write_jsonl
from tests.support.processes import ServiceProcess, new_instance
from tests.support.subjects import new_uscc, wrong_check

pytestmark = pytest.mark.integration

INSTANCE = new_instance()
PORTS = {"designation": 18151, "sharing": 18152, "warning": 18153, "objection": 18154, "cases": 18155}
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
async def platform(stack: Settings) -> AsyncIterator[dict[str, ServiceProcess]]:
    svcs = {name: ServiceProcess(name, port, instance=INSTANCE) for name, port in PORTS.items()}
    try:
        await asyncio.gather(*(svc.start() for svc in svcs.values()))
        yield svcs
    finally:
        await asyncio.gather(*(svc.stop() for svc in svcs.values()))
        for svc in svcs.values():
            await svc.discard()


async def import_file(stack: Settings, path: Path, unit: str, state_dir: Path, **options: Any) -> ImportSummary:
    signer = credentials.signer(f"unit:{unit}")
    assert signer is not None, f"the stack made no key for unit:{unit}"
    return await run_import(
        path,
        unit,
        settings=stack.as_principal(f"unit:{unit}"),
        signer=signer,
        state_dir=state_dir,
        progress=False,
        timeout=180,
        **options,
    )


def designation(
    ref: str, list_: str, standard: str, subject: dict[str, Any], start: date, **extra: Any
) -> dict[str, Any]:
    return {
        "ref": ref,
        "list": list_,
        "standard": standard,
        "subject": subject,
        "decision": {"document_no": f"DOC-{ref}", "decided_on": start.isoformat(), "facts": "Facts."},
        "effective_from": start.isoformat(),
        "effective_to": (start + timedelta(days=364)).isoformat(),
        **extra,
    }


async def on_lists(http: httpx.AsyncClient, subject_id: str, **params: str) -> dict[str, tuple[str, str]]:
    """The subject's entries at a moment, as sharing answers: entry id -> (list, status)."""
    body = (await http.get(f"/v1/subjects/{subject_id}", params=params)).json()
    return {e["entry"]["entry_id"]: (e["list"], e["status"]) for e in body["entries"]}


async def eventually(check: Any, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_a_mixed_file_gives_the_oracles_lists_history_and_refusals(
    stack: Settings, platform: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    today = local_day(datetime.now(UTC))
    black, old, gone, watched = company("Black Co."), company("Old Co."), company("Gone Co."), company("Watched Co.")
    this_year = today - timedelta(days=30)
    typo = {**company("Typo Co."), "id": wrong_check(new_uscc())}
    revoked = {"removed_on": "2024-06-01", "removal_reason": "revoked"}
    rows = [
        designation("active", "black", "taxation-black", black, this_year),
        designation("ended", "black", "taxation-black", old, date(2019, 3, 1)),
        designation("removed", "black", "taxation-black", gone, date(2024, 2, 1), **revoked),
        designation("bad-id", "black", "taxation-black", typo, this_year),
        designation("active", "red", "taxation-red", company("Dup Co."), this_year),  # a ref used above
        designation("conflict", "red", "taxation-red", black, this_year),  # red while black
        designation("watched", "key_scrutiny", "taxation-key_scrutiny", watched, this_year),
    ]
    summary = await import_file(stack, write_jsonl(tmp_path / "sat.jsonl", rows), UNIT, tmp_path / "state")
    assert summary.complete
    assert summary.imported == 4
    assert {r.ref: sorted({e["code"] for e in r.errors}) for r in summary.refused} == {
        "bad-id": ["invalid_checksum"],
        "active": ["duplicate_id"],  # the second "active", refused before it was sent
        "conflict": ["conflicts_with_black_list"],
    }
    # The same subject in the customs and environment fields: on three key-scrutiny fields.
    for unit, field in (("100000-GAC", "customs"), ("100000-MEE", "environment")):
        row = designation("watched", "key_scrutiny", f"{field}-key_scrutiny", watched, this_year)
        other = await import_file(stack, write_jsonl(tmp_path / f"{field}.jsonl", [row]), unit, tmp_path / "state")
        assert (other.imported, other.refused) == (1, [])

    ids = {ref: import_id(UNIT, ref) for ref in ("active", "ended", "removed", "watched")}
    async with platform["sharing"].client() as sharing:

        async def listed() -> None:
            assert await on_lists(sharing, black["id"]) == {ids["active"]: ("black", "active")}
            # Ended entries: history on their own dates, known from the import on, not today.
            assert await on_lists(sharing, old["id"], as_of="2019-06-01") == {ids["ended"]: ("black", "removed")}
            assert await on_lists(sharing, old["id"], as_of=today.isoformat()) == {}
            assert await on_lists(sharing, gone["id"], as_of="2024-05-31") == {ids["removed"]: ("black", "removed")}
            assert await on_lists(sharing, gone["id"], as_of="2024-06-01") == {}

        await eventually(listed)
        before = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert await on_lists(sharing, old["id"], as_of="2019-06-01", known_at=before) == {}
        # The feed announces what is on a list today, never history.
        changes = (await sharing.get("/v1/changes", params={"list": "black", "limit": 1000})).json()["changes"]
        announced = {(c.get("entry") or {}).get("entry_id") for c in changes}
        assert ids["active"] in announced
        assert not {ids["ended"], ids["removed"]} & announced

    async with platform["warning"].client() as warning:

        async def warned() -> None:
            body = (await warning.get(f"/v1/warnings/{watched['id']}")).json()
            assert body.get("status") == "listed", body
            assert sorted(e["field"] for e in body["entries"]) == ["customs", "environment", "taxation"]

        await eventually(warned)

    # Every other consumer keeps its copy, as it stands.
    admin = await asyncpg.connect(stack.database_url)
    try:
        for name in ("objection", "cases"):

            async def copied(schema: str = platform[name].schema) -> None:
                got = dict(
                    await admin.fetch(
                        f"SELECT designation_id, status FROM {schema}.designations WHERE designation_id = ANY($1)",
                        list(ids.values()),
                    )
                )
                assert got == {
                    ids["active"]: "active",
                    ids["ended"]: "removed",
                    ids["removed"]: "removed",
                    ids["watched"]: "active",
                }

            await eventually(copied)
    finally:
        await admin.close()


async def test_an_import_killed_midway_and_run_again_gives_what_one_run_gives(
    stack: Settings, platform: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    today = local_day(datetime.now(UTC))
    n = 3000
    one_run = write_jsonl(tmp_path / "one.jsonl", list(entries(n, today, seed=11, prefix="one")))
    twice = write_jsonl(tmp_path / "twice.jsonl", list(entries(n, today, seed=12, prefix="two")))
    unit = "110000-SAT"  # a provincial unit: red, black and key scrutiny in taxation
    whole = await import_file(stack, one_run, unit, tmp_path / "state-one", batch_size=50)
    assert whole.complete
    assert (whole.imported, whole.refused) == (n, [])

    # The command as a department runs it, killed once a few of its 60 messages are answered.
    state_dir = tmp_path / "state-two"
    env = {**os.environ, "CREDIT_PRINCIPAL": f"unit:{unit}"}
    command = [sys.executable, "-m", "credit_common.imports.cli", str(twice), "--unit", unit]
    command += ["--batch-size", "50", "--state-dir", str(state_dir), "--timeout", "300"]
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
    admin = await asyncpg.connect(stack.database_url)
    schema = platform["designation"].schema
    refs = {prefix: [import_id(unit, f"{prefix}-{i:07d}") for i in range(n)] for prefix in ("one", "two")}
    try:
        for _ in range(600):
            done = await admin.fetchval(
                f"SELECT count(*) FROM {schema}.designations WHERE designation_id = ANY($1)", refs["two"]
            )
            if done >= 200 or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert proc.returncode is None, "the import finished before it could be interrupted: make the file larger"
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert state_path(state_dir, file_digest(twice), unit).exists()
        resumed = await import_file(stack, twice, unit, state_dir, batch_size=50)
        assert resumed.resumed
        assert resumed.complete
        assert (resumed.imported, resumed.refused) == (n, [])
        # One entry per ref, as one run leaves them, and each announced once downstream.
        for prefix, seed in (("one", 11), ("two", 12)):
            rows = await admin.fetch(
                f"SELECT status, count(*) FROM {schema}.designations WHERE designation_id = ANY($1) GROUP BY 1",
                refs[prefix],
            )
            active = sum(is_active(doc, today) for doc in entries(n, today, seed=seed, prefix=prefix))
            assert dict(rows) == {"active": active, "removed": n - active}

            async def announced_once(ids: list[str] = refs[prefix]) -> None:
                inputs = await admin.fetchval(
                    f"SELECT count(*) FROM {platform['sharing'].schema}.inputs WHERE entry_id = ANY($1)", ids
                )
                assert inputs == n

            await eventually(announced_once, timeout=120)
    finally:
        await admin.close()
