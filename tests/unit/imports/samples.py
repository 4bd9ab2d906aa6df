"""The sample import files of deploy/samples (one unit's entries, valid against the sample
catalogue), as the import tests read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "deploy" / "samples"
JSONL = SAMPLES / "import-sample.jsonl"
CSV = SAMPLES / "import-sample.csv"
UNIT = "110000-SAT"  # the unit the samples are entries of


def sample_entries() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in JSONL.read_bytes().splitlines() if line.strip()]
