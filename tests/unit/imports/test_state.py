"""The state file: written whole or not at all, read back as written, and never taken for the
state of another import."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from credit_common.imports.state import ImportState, StateError, load_state, save_state, state_path

DIGEST = "ab" * 32


def state(**over: object) -> ImportState:
    doc: dict[str, object] = {
        "file": "/data/entries.csv",
        "digest": DIGEST,
        "unit": "110000-SAT",
        "batch_size": 500,
        "started_at": "2026-12-05T09:30:00+08:00",
        "feedback_from": {0: 17, 1: 0, 11: 40_211},
    }
    return ImportState(**(doc | over))  # type: ignore[arg-type]


def test_written_and_read_back(tmp_path: Path) -> None:
    where = state_path(tmp_path / "state", DIGEST, "110000-SAT")
    assert where == tmp_path / "state" / f"{DIGEST[:16]}-110000-SAT.json"
    assert load_state(where, DIGEST, "110000-SAT") is None
    save_state(state(), where)
    assert load_state(where, DIGEST, "110000-SAT") == state()
    assert orjson.loads(where.read_bytes()) == {
        "file": "/data/entries.csv",
        "digest": DIGEST,
        "unit": "110000-SAT",
        "batch_size": 500,
        "started_at": "2026-12-05T09:30:00+08:00",
        "feedback_from": {"0": 17, "1": 0, "11": 40_211},
    }
    assert [p.name for p in where.parent.iterdir()] == [where.name]  # no temporary file left


def test_rewritten_whole(tmp_path: Path) -> None:
    where = state_path(tmp_path, DIGEST, "110000-SAT")
    save_state(state(), where)
    save_state(state(batch_size=10), where)
    assert load_state(where, DIGEST, "110000-SAT") == state(batch_size=10)


def test_another_imports_state_or_a_broken_file_is_refused(tmp_path: Path) -> None:
    where = state_path(tmp_path, DIGEST, "110000-SAT")
    save_state(state(unit="110108-SAT"), where)
    with pytest.raises(StateError, match="another import"):
        load_state(where, DIGEST, "110000-SAT")
    where.write_bytes(b'{"file": "x"}')
    with pytest.raises(StateError, match="not a state file"):
        load_state(where, DIGEST, "110000-SAT")


@pytest.mark.parametrize("unit", ["../etc", "a/b", "", "110000 SAT", ".hidden"])
def test_a_unit_code_names_no_other_path(tmp_path: Path, unit: str) -> None:
    with pytest.raises(ValueError, match="not a unit code"):
        state_path(tmp_path, DIGEST, unit)
