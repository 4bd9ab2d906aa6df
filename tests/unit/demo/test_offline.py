"""`credit-demo --offline`: the demo's traffic through the services' own handlers in memory, with
their answers reported per request type."""

from __future__ import annotations

from pathlib import Path

from credit_demo.offline import offline_run
from credit_demo.options import Options
from rich.console import Console

CATALOG = Path(__file__).resolve().parents[3] / "deploy" / "catalog"


def test_the_offline_run_reports_what_the_services_answered() -> None:
    console = Console(record=True, width=160)
    offline_run(Options(rate=50, minutes=0.2, seed=11, catalog=CATALOG), console)
    text = console.export_text()
    assert "600 messages, seed 11" in text
    designate = next(line for line in text.splitlines() if "credit.designation.designate" in line)
    accepted, rejected = (int(cell.strip()) for cell in designate.split("│")[2:4])
    assert accepted > 200
    assert rejected == 0
    assert "list changes published" in text
