"""The demo's historical import: before the live traffic, the sample file of `deploy/samples`
imported as its unit with `credit-import`'s own client, as a department joining the platform loads
the lists it has published since 2018. Run again, it resumes from its state in the run directory
(nothing is sent twice); on a stack that has the entries already they are refused `duplicate_id`."""

from __future__ import annotations

from pathlib import Path

from credit_common.imports.client import run_import
from credit_common.security import credentials
from credit_common.settings import Settings

SAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "samples" / "import-sample.jsonl"
UNIT = "110000-SAT"
TIMEOUT_S = 120.0


async def import_history(settings: Settings, run_dir: Path) -> str:
    """Import the sample as its unit; a line saying what came of it."""
    signer = credentials.signer(f"unit:{UNIT}")
    if signer is None or not SAMPLE.exists():
        return f"skipped (no signing key for unit:{UNIT} or no {SAMPLE.name})"
    summary = await run_import(
        SAMPLE, UNIT, settings=settings, signer=signer, state_dir=run_dir / "imports", timeout=TIMEOUT_S, progress=False
    )
    state = "complete" if summary.complete else "incomplete: run the demo again to resume"
    return f"{summary.imported} imported, {len(summary.refused)} refused of {summary.read} ({state})"
