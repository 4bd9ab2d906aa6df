"""The README's examples, executed against running services (designation and sharing as processes on
ports 18501 and 18502; the README's `localhost:8101`/`8102` point there). Every example block is
either run here or named in SKIPPED with the reason, so an example added to the README without a
run fails this test.

What is substituted, and only that: the ports; the request's `id` and subject (a fresh id and a
fresh valid code, so every run designates anew; the README's own values are checked to be valid);
placeholders written `...` (a cursor) and the example seq 8812, filled from the answer before; the
subscriber's consumer group; `uv run` (the suite runs in the project's environment)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from credit_common.contracts.envelope import new_id
from credit_common.contracts.registry import model_for
from credit_common.settings import Settings
from stdnum.cn import uscc

from tests.support.events import poll
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import CREDENTIALS
from tests.support.subjects import new_resident_id, new_uscc
from tests.support.tokens import auth_headers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
DESIGNATION_PORT, SHARING_PORT = 18501, 18502
INSTANCE = new_instance()  # this module's deployment of the two services
EXAMPLE_ID = "0193d1c2-7a51-7c3e-9f0a-3b1d2e4f5a6b"
EXAMPLE_SUBJECT = "91110000MA01ABCDEX"
SKIPPED = {
    ("Quick start", 0): "make up / make test: the suite itself runs under make test",
    ("Demo traffic", 0): "make demo: minutes of load on the whole platform; tests/unit/demo checks its requests",
    ("Deployment", 0): "docker compose: Docker is not part of the test machine (tests/unit/deploy checks the files)",
    ("Deployment", 1): "docker build/run: as above",
    ("Deployment", 2): "Prometheus and Grafana containers: as above",
}


@dataclass
class Block:
    heading: str
    index: int  # among the blocks under the same heading
    lang: str
    text: str


def blocks() -> list[Block]:
    out: list[Block] = []
    heading, lang, inside = "", "", False
    lines: list[str] = []
    counts: dict[str, int] = {}
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            if inside:
                if lang:  # plain ``` blocks are pictures, not examples
                    n = counts.get(heading, 0)
                    counts[heading] = n + 1
                    out.append(Block(heading, n, lang, "\n".join(lines)))
                inside = False
            else:
                inside, lang, lines = True, line[3:].strip(), []
            continue
        if inside:
            lines.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip().split(" (")[0]
    return out


def block(heading: str, lang: str) -> Block:
    (found,) = [b for b in blocks() if b.heading == heading and b.lang == lang]
    return found


def commands(b: Block) -> list[str]:
    """The block's shell commands, continuation lines joined, comments kept apart."""
    joined = b.text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def ports(cmd: str) -> str:
    return cmd.replace("localhost:8101", f"127.0.0.1:{DESIGNATION_PORT}").replace(
        "localhost:8102", f"127.0.0.1:{SHARING_PORT}"
    )


def as_run_here(cmd: str) -> str:
    """A `uv run` command of the README as the suite runs it: the project's environment, and the
    credentials of the stack the tests started."""
    env = f"CREDIT_CREDENTIALS_DIR={shlex.quote(str(CREDENTIALS))}"
    return re.sub(r"^uv run ", f"{env} {shlex.quote(str(Path(sys.executable).parent))}/", cmd)


def in_shell_of(env_line: str, cmd: str) -> str:
    """`cmd` run in a shell that ran the README's `eval "$(deploy/stack.sh env ...)"` first (the
    suite runs each command in a shell of its own)."""
    env_line = env_line.split(" #")[0].rstrip()  # its comment would swallow what follows
    assert env_line.startswith('eval "$(deploy/stack.sh env'), env_line
    stack_sh = shlex.quote(str(ROOT / "deploy" / "stack.sh"))
    env = f"CREDIT_CREDENTIALS_DIR={shlex.quote(str(CREDENTIALS))}"
    return f"{env_line.replace('deploy/stack.sh', f'{env} {stack_sh}')} && {cmd}"


def send_script(stack: Settings) -> str:
    """The README's Python example, pointed at the test stack and its credentials."""
    text = block("Sending a request", "python").text
    return text.replace("127.0.0.1:19092", stack.kafka_bootstrap_servers).replace(
        ".local/credentials", str(CREDENTIALS)
    )


async def shell(cmd: str, cwd: Path) -> str:
    proc = await asyncio.create_subprocess_shell(
        cmd, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"{cmd}\n{err.decode()}"
    return out.decode()


def fresh_request(tmp: Path) -> dict[str, Any]:
    """The README's request (checked against the contract), under a fresh id and subject."""
    doc: dict[str, Any] = json.loads(block("Sending a request", "json").text)
    assert doc["id"] == EXAMPLE_ID
    assert uscc.is_valid(doc["subject"])
    model_for(doc["type"]).model_validate(doc["data"])
    subject = new_uscc()
    doc = json.loads(json.dumps(doc).replace(doc["subject"], subject))
    doc["id"] = new_id()
    (tmp / "request.json").write_text(json.dumps(doc, ensure_ascii=False))
    return doc


@pytest.fixture(scope="module")
async def services(stack: Settings) -> AsyncIterator[None]:
    designation = ServiceProcess("designation", DESIGNATION_PORT, instance=INSTANCE)
    sharing = designation.peer("sharing", SHARING_PORT)
    await designation.start()
    await sharing.start()
    try:
        yield
    finally:
        await sharing.stop()
        await designation.stop()
        await sharing.discard()
        await designation.discard()


async def accepted(request_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{DESIGNATION_PORT}", headers=auth_headers()) as http:

        async def answered() -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"/v1/requests/{request_id}")).json()
            return body if body.get("status") not in (None, "pending") else None

        body: dict[str, Any] = await poll(answered, timeout=60)
    assert body["status"] == "accepted", body
    return body


def test_every_example_is_run_or_skipped_for_a_reason() -> None:
    run = {("Sending a request", 0), ("Sending a request", 1), ("Sending a request", 2)}
    run |= {("Following the lists", 0), ("Following the lists", 1), ("Reference data", 0), ("Historical import", 0)}
    run |= {("The public view", 0)}
    assert {(b.heading, b.index) for b in blocks()} == run | set(SKIPPED)


async def test_sending_a_request_over_http_and_kafka(services: None, stack: Settings, tmp_path: Path) -> None:
    # HTTP: the curl lines, in order.
    doc = fresh_request(tmp_path)
    sign, post, as_unit, status, record = [
        ports(c.replace(EXAMPLE_ID, doc["id"])) for c in commands(block("Sending a request", "bash"))
    ]
    status, record = in_shell_of(as_unit, status), in_shell_of(as_unit, record)
    await shell(as_run_here(sign), tmp_path)
    posted = json.loads(await shell(post, tmp_path))
    assert posted["id"] == doc["id"]
    await accepted(doc["id"])
    assert json.loads(await shell(status, tmp_path))["status"] == "accepted"
    designation = json.loads(await shell(record, tmp_path))
    assert designation["designation_id"] == doc["id"]
    assert designation["subject"]["id"] == doc["subject"]

    # Kafka: the Python example as a script.
    doc = fresh_request(tmp_path)
    (tmp_path / "send.py").write_text(send_script(stack))
    await shell(f"{shlex.quote(sys.executable)} send.py", tmp_path)
    await accepted(doc["id"])


async def designated_and_shared(stack: Settings, tmp_path: Path) -> dict[str, Any]:
    """The README's request, fresh, sent by its Python example and on the lists (sharing caught up)."""
    doc = fresh_request(tmp_path)
    (tmp_path / "send.py").write_text(send_script(stack))
    await shell(f"{shlex.quote(sys.executable)} send.py", tmp_path)
    await accepted(doc["id"])
    await wait_caught_up(
        stack.kafka_bootstrap_servers,
        deployment(INSTANCE).group_of("sharing"),
        ["credit.designation.events.v1"],
        timeout=600,
    )
    return doc


async def test_the_public_view(services: None, stack: Settings, tmp_path: Path) -> None:
    """The public examples without a token: the search finds a company designated just now (by
    a part of its code: the README's name is every run's), the standards and memorandums."""
    doc = await designated_and_shared(stack, tmp_path)
    search, standards, mous, stats = [ports(c) for c in commands(block("The public view", "bash"))]
    assert json.loads(await shell(search, tmp_path))["entries"] is not None
    mine = json.loads(await shell(search.replace("q=Example%20Trading", f"q={doc['subject'][2:12]}"), tmp_path))
    assert [e["entry_id"] for e in mine["entries"]] == [doc["id"]]
    assert "facts" not in mine["entries"][0]["decision"]
    assert "taxation-black" in {s["code"] for s in json.loads(await shell(standards, tmp_path))["standards"]}
    assert all("taxation" in m["fields"] for m in json.loads(await shell(mous, tmp_path))["mous"])
    year = json.loads(await shell(stats, tmp_path))
    assert year["year"] == 2026
    assert {"on_lists", "by_month", "publication"} <= set(year)


async def test_following_the_lists_over_http_and_kafka(services: None, stack: Settings, tmp_path: Path) -> None:
    doc = await designated_and_shared(stack, tmp_path)

    as_operator, *reads = [ports(c) for c in commands(block("Following the lists", "bash"))]
    snapshot, page, changes, subject, export, liaisons, downloads = [in_shell_of(as_operator, c) for c in reads]
    first = json.loads(await shell(snapshot, tmp_path))
    assert isinstance(first["snapshot_seq"], int)
    if first["next_cursor"]:
        nxt = json.loads(await shell(page.replace("cursor=...", f"cursor={first['next_cursor']}"), tmp_path))
        assert "entries" in nxt
    else:
        assert "cursor=..." in page
    follow = json.loads(await shell(changes.replace("after=8812", f"after={first['snapshot_seq']}"), tmp_path))
    assert "last_seq" in follow
    assert "changes" in follow
    known = json.loads(await shell(subject.replace(EXAMPLE_SUBJECT, doc["subject"]), tmp_path))
    assert "entries" in known
    await shell(export, tmp_path)
    assert (tmp_path / "black.csv").read_text().splitlines()[0].startswith("entry_id")
    assert {row["region"][:2] for row in json.loads(await shell(liaisons, tmp_path))["liaisons"]} == {"44"}
    taken = json.loads(await shell(downloads, tmp_path))["downloads"]
    assert {"export", "snapshot"} <= {d["kind"] for d in taken}  # the two just above

    # The subscriber example, in a consumer group of its own, until it has printed a change.
    group = f"subscriber.local.readme-{new_id()}"
    script = (
        block("Following the lists", "python")
        .text.replace("127.0.0.1:19092", stack.kafka_bootstrap_servers)
        .replace('"subscriber.local.portal-mirror"', json.dumps(group))
        .replace(".local/credentials", str(CREDENTIALS))
    )
    (tmp_path / "follow.py").write_text(script)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "follow.py", cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        seq, type_, _entry = line.split()
        assert int(seq) > 0
        assert type_.startswith("credit.list.entry_")
    finally:
        proc.kill()
        await proc.wait()


async def test_reference_data_commands(stack: Settings, tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    validate, as_reference, publish = commands(block("Reference data", "bash"))
    env = f"KAFKA_BOOTSTRAP_SERVERS={shlex.quote(stack.kafka_bootstrap_servers)}"
    run = [re.sub(r"^uv run ", f"{env} {shlex.quote(str(venv_bin))}/", c) for c in (validate, publish)]
    run[1] = in_shell_of(as_reference, run[1])
    assert re.match(r"OK: \d+ records", await shell(f"cd {shlex.quote(str(ROOT))} && {run[0]}", tmp_path))
    assert "records to credit.reference.v1" in await shell(f"cd {shlex.quote(str(ROOT))} && {run[1]}", tmp_path)


def fresh_samples(tmp: Path) -> None:
    """The sample import files under new refs and subjects (valid codes of the same kinds), so
    every run imports anew: the README's files imported twice would be refused `duplicate_id`."""
    samples = ROOT / "deploy" / "samples"
    token = new_id()[-8:]
    renames: dict[str, str] = {}
    for line in (samples / "import-sample.jsonl").read_text().splitlines():
        doc = json.loads(line)
        renames[doc["ref"]] = f"{doc['ref']}-{token}"
        sid = doc["subject"]["id"]
        renames[sid] = new_resident_id() if doc["subject"]["scheme"] == "resident_id" else new_uscc()
    for name in ("import-sample.jsonl", "import-sample.csv"):
        text = (samples / name).read_text()
        for old, new in renames.items():
            text = text.replace(old, new)
        (tmp / "deploy" / "samples").mkdir(parents=True, exist_ok=True)
        (tmp / "deploy" / "samples" / name).write_text(text)


async def test_historical_import_commands(services: None, stack: Settings, tmp_path: Path) -> None:
    dry_run, send = commands(block("Historical import", "bash"))
    fresh_samples(tmp_path)
    judged = await shell(as_run_here(dry_run), tmp_path)  # exit status 0: nothing refused
    assert re.search(r"would be sent\s+8\s", judged), judged
    done = await shell(as_run_here(send), tmp_path)  # exit status 0: every entry imported
    assert re.search(r"imported\s+8\b", done), done
