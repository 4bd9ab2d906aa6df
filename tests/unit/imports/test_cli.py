"""`credit-import` as a command: the dry run's summary and refusals, its exit statuses, and the
usage and credentials errors (status 2) that stop it before any connection."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from credit_common.imports.cli import app
from credit_common.settings import get_settings
from typer.testing import CliRunner

from tests.support.subjects import wrong_check
from tests.unit.imports.samples import CSV, JSONL, UNIT, sample_entries

runner = CliRunner()


def invoke(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _today_in_december(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The samples' dates are judged on 2026-12-05, whatever today is where the tests run."""
    monkeypatch.setenv("CREDIT_NOW", "2026-12-05T09:30:00+08:00")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def figures(output: str) -> dict[str, int]:
    """The summary's figures by label."""
    found = re.findall(r"^ {2,4}(\S[^:]*?) {2,}([\d,]+)\b", output, flags=re.MULTILINE)
    return {label: int(n.replace(",", "")) for label, n in found}


def bad_file(tmp_path: Path) -> Path:
    entries = sample_entries()
    wrong = {**entries[2]["subject"], "id": wrong_check(entries[2]["subject"]["id"])}
    lines = [
        orjson.dumps(entries[0]).decode(),
        "{oops",
        orjson.dumps({**entries[1], "list": "grey"}).decode(),
        "",
        orjson.dumps({**entries[2], "subject": wrong}).decode(),
        orjson.dumps({**entries[3], "ref": entries[0]["ref"]}).decode(),
        orjson.dumps(entries[4]).decode(),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("sample", [JSONL, CSV])
def test_a_clean_file_dry_runs_to_status_0(sample: Path) -> None:
    result = invoke(sample, "--unit", UNIT, "--dry-run")
    assert result.exit_code == 0, result.output
    assert figures(result.output) == {"entries read": 8, "would be sent": 8, "would be refused": 0}
    assert "in 1 message of at most 1,000 entries" in result.output
    assert "checked by the platform" in result.output


def test_a_dry_run_lists_every_refusal_with_its_line_and_exits_3(tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    refusals = tmp_path / "out" / "refused.jsonl"
    result = invoke(path, "--unit", UNIT, "--dry-run", "--batch-size", "2", "--refusals", refusals)
    assert result.exit_code == 3, result.output
    assert figures(result.output) == {
        "entries read": 6,
        "would be sent": 3,
        "would be refused": 4,
        "schema_violation": 2,
        "duplicate_id": 1,
        "invalid_checksum": 1,
    }
    assert "in 2 messages of at most 2 entries" in result.output
    assert "  line 2: schema_violation: not JSON" in result.output
    assert f"  line 5 ref {sample_entries()[2]['ref']}: invalid_checksum (subject.id): the check" in result.output
    written = [orjson.loads(line) for line in refusals.read_bytes().splitlines()]
    assert [(r["line"], r["ref"], [e["code"] for e in r["errors"]]) for r in written] == [
        (2, None, ["schema_violation"]),
        (3, sample_entries()[1]["ref"], ["schema_violation"]),
        (5, sample_entries()[2]["ref"], ["invalid_checksum"]),
        (6, sample_entries()[0]["ref"], ["duplicate_id"]),
    ]


def test_a_dry_run_writes_no_refusals_file_unless_asked(tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    assert invoke(path, "--unit", UNIT, "--dry-run").exit_code == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    header, *rows = CSV.read_text(encoding="utf-8").splitlines()
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("\n".join([header + ",remarks", *(r + "," for r in rows)]) + "\n", encoding="utf-8")
    result = invoke(unknown, "--unit", UNIT, "--dry-run")
    assert result.exit_code == 2
    assert "unknown column 'remarks'" in result.output
    assert invoke(JSONL, "--unit", "../x", "--dry-run").exit_code == 2
    assert invoke(JSONL, "--unit", UNIT, "--dry-run", "--batch-size", "1001").exit_code == 2
    assert invoke(tmp_path / "missing.jsonl", "--unit", UNIT, "--dry-run").exit_code == 2
    assert invoke(JSONL, "--dry-run").exit_code == 2  # --unit is required
    other = tmp_path / "entries.txt"
    other.write_text("x")
    assert invoke(other, "--unit", UNIT, "--dry-run").exit_code == 2


def test_no_signing_key_exits_2_before_connecting(tmp_path: Path) -> None:
    result = invoke(JSONL, "--unit", UNIT, "--credentials-dir", tmp_path, "--state-dir", tmp_path / "state")
    assert result.exit_code == 2
    assert "no signing key for unit:110000-SAT" in result.output
    assert "every request is signed" in result.output
    assert not (tmp_path / "state").exists()


def test_a_key_file_of_another_unit_exits_2(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"principal": "unit:110108-SAT", "signing": {"kid": "k", "private_key": "AAAA"}}')
    result = invoke(JSONL, "--unit", UNIT, "--credentials-dir", tmp_path, "--key-file", key)
    assert result.exit_code == 2
    assert "key of unit:110108-SAT, not of unit:110000-SAT" in result.output
    key.write_text('{"signing": {"kid": "k", "private_key": "not base64url!"}}')
    result = invoke(JSONL, "--unit", UNIT, "--credentials-dir", tmp_path, "--key-file", key)
    assert result.exit_code == 2
    assert "signing key in" in result.output
