"""The short fault-injection run inside `make test`: every fault of `make chaos` (shorter outages,
a lighter load, 3,000 hostile messages instead of 100,000) on a throwaway stack of its own, and
every fault's row must say nothing was lost, doubled or left unanswered, and the platform was
quiet again within 60 s. `make chaos` runs the full version and keeps its rows in
tests/perf/results/chaos.csv."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from tests.chaos.run import FAULTS, RECOVERY_LIMIT_S

pytestmark = [pytest.mark.chaos]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1800)
def test_every_fault_loses_nothing_doubles_nothing_and_recovers_within_a_minute(tmp_path: Path) -> None:
    out = tmp_path / "chaos.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CREDIT_", "DATABASE_URL"))}
    run = subprocess.run(
        ["bash", str(ROOT / "deploy" / "chaos.sh"), "--short", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1750,
    )
    report = "\n".join(line for line in run.stderr.splitlines()[-80:])
    assert out.exists(), f"no rows written (exit {run.returncode}):\n{report}"
    rows = list(csv.DictReader(out.open()))
    assert [r["fault"] for r in rows] == list(FAULTS), f"a fault was not run:\n{report}"
    for row in rows:
        assert (row["lost"], row["duplicated"], row["unanswered"]) == ("0", "0", "0"), f"{row}\n{report}"
        assert row["recovery_s"], f"never recovered: {row}\n{report}"
        assert float(row["recovery_s"]) <= RECOVERY_LIMIT_S, f"{row}\n{report}"
    assert run.returncode == 0, report
