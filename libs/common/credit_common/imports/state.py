"""The state file of an import: what a later run of the same file by the same unit needs to
resume instead of starting again.

`<state dir>/<digest[:16]>-<unit>.json`, written once by the first run, before anything is sent:
`{file, digest, unit, batch_size, started_at, feedback_from: {partition: offset}}`. `started_at`
is every message's `time` (so a batch sent again is the same signed bytes: a silent retry);
`feedback_from` is where the feedback topic ended then (every answer to this import lies after
it, so a later run finds the answers to batches an earlier one sent)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


def default_state_dir() -> Path:
    """`~/.local/state/credit-import` (XDG_STATE_HOME's default)."""
    return Path.home() / ".local" / "state" / "credit-import"


#: A unit code as it may name a file (`110000-SAT`): no separator, no `..`, nothing to escape.
UNIT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def state_path(state_dir: Path, digest: str, unit: str) -> Path:
    if not UNIT_CODE.match(unit):
        raise ValueError(f"{unit!r} is not a unit code (letters, digits, '-', '_', '.')")
    return state_dir / f"{digest[:16]}-{unit}.json"


@dataclass(frozen=True, slots=True)
class ImportState:
    file: str
    digest: str
    unit: str
    batch_size: int
    started_at: str  # ISO 8601 with its offset: the `time` of every message of the import
    feedback_from: dict[int, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "digest": self.digest,
            "unit": self.unit,
            "batch_size": self.batch_size,
            "started_at": self.started_at,
            "feedback_from": {str(p): offset for p, offset in sorted(self.feedback_from.items())},
        }

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ImportState:
        return cls(
            file=str(doc["file"]),
            digest=str(doc["digest"]),
            unit=str(doc["unit"]),
            batch_size=int(doc["batch_size"]),
            started_at=str(doc["started_at"]),
            feedback_from={int(p): int(offset) for p, offset in dict(doc["feedback_from"]).items()},
        )


class StateError(Exception):
    """A state file that cannot be used (unreadable, or of another import)."""


def load_state(path: Path, digest: str, unit: str) -> ImportState | None:
    """The state of the import of the file `digest` by `unit`, None when it never ran."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = ImportState.of(orjson.loads(raw))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{path}: not a state file of credit-import ({exc}); remove it to start over") from None
    if state.digest != digest or state.unit != unit:
        raise StateError(f"{path}: the state of another import ({state.unit}, {state.digest[:16]})")
    return state


def save_state(state: ImportState, path: Path) -> Path:
    """Write the state atomically (a run killed while writing leaves the old file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(state.as_dict(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
