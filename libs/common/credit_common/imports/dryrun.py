"""`credit-import --dry-run`: the whole file read and judged without a connection, by the rules
that need no catalogue: the contract, repeated refs, the subjects' identifiers, dates after today
and periods that do not hold together. The catalogue's rules (the unit's authorisation and level,
the standards and their periods, what is on the lists today) are the platform's to apply."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from credit_common.contracts.common import ErrorCode
from credit_common.contracts.requests import IMPORT_BATCH_MAX
from credit_common.identifiers import check_identifier
from credit_common.imports.batches import batches, import_prefix
from credit_common.imports.files import Line, error, file_digest, read_lines
from credit_common.imports.results import ImportSummary, Refusal


def rule_errors(entry: dict[str, Any], today: date) -> list[dict[str, Any]]:
    """What the platform would refuse a contract-valid entry (as `files` sends it) for, of the
    rules that need no catalogue. `today` is the day in Asia/Shanghai."""
    errors: list[dict[str, Any]] = []
    subject = entry["subject"]
    ident = check_identifier(subject["scheme"], subject["kind"], subject["id"], "checksum_override" in entry)
    if ident.error is not None:
        errors.append(error(ident.error.code, ident.error.field, ident.error.message))
    decided_on = date.fromisoformat(entry["decision"]["decided_on"])
    if decided_on > today:
        errors.append(error(ErrorCode.INVALID_DATE, "decision.decided_on", f"{decided_on} is after today ({today})"))
    start, end = date.fromisoformat(entry["effective_from"]), date.fromisoformat(entry["effective_to"])
    if end < start:
        errors.append(error(ErrorCode.INVALID_PERIOD, "effective_to", f"effective_to {end} is before {start}"))
    if "removed_on" in entry:
        removed_on = date.fromisoformat(entry["removed_on"])
        if removed_on > today:
            errors.append(error(ErrorCode.INVALID_DATE, "removed_on", f"{removed_on} is after today ({today})"))
        last = end + timedelta(days=1)  # removed the day after its last day: it ran its course
        if not start <= removed_on <= last:
            message = f"removed_on {removed_on} is outside its period {start}..{last}"
            errors.append(error(ErrorCode.INVALID_PERIOD, "removed_on", message))
    return errors


def dry_run(path: Path, unit: str, *, today: date, batch_size: int = IMPORT_BATCH_MAX) -> ImportSummary:
    """Read and judge the whole file as `unit` would send it: the summary of what a real run
    sends (entries and messages) and of every refusal the file's own content earns."""
    summary = ImportSummary(file=path, unit=unit, batch_size=batch_size, dry_run=True, complete=True)

    def judged() -> Iterator[Line]:
        for line in read_lines(path):
            summary.read += 1
            if line.errors or line.entry is None:
                summary.refused.append(Refusal.of_line(line))
                continue
            # Sent all the same (the platform is the judge): counted in the messages it makes.
            summary.sendable += 1
            errors = rule_errors(line.entry, today)
            if errors:
                summary.refused.append(Refusal(line.ref, line.number, errors))
            yield line

    for _ in batches(judged(), prefix=import_prefix(file_digest(path), unit), batch_size=batch_size):
        summary.messages += 1
    return summary
