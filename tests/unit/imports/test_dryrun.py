"""The dry run's rules that need no catalogue: identifiers, dates after today, periods."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from credit_common.contracts.requests import ImportEntry
from credit_common.imports.dryrun import dry_run, rule_errors
from credit_common.imports.files import read_lines

from tests.support.subjects import wrong_check
from tests.unit.imports.samples import CSV, JSONL, UNIT, sample_entries

TODAY = date(2026, 12, 5)


def sent(**over: Any) -> dict[str, Any]:
    """The second sample entry (red, 2021-05-01 to 2022-04-30) changed by `over`, in the form
    the file reader sends an entry."""
    return ImportEntry.model_validate(sample_entries()[1] | over).model_dump(mode="json", exclude_none=True)


def codes(entry: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["code"], e["field"]) for e in rule_errors(entry, TODAY)]


def test_the_samples_break_none_of_them() -> None:
    for line in read_lines(JSONL):
        assert line.entry is not None
        assert rule_errors(line.entry, TODAY) == []


def test_identifiers() -> None:
    subject = sample_entries()[1]["subject"]
    wrong = {**subject, "id": wrong_check(subject["id"])}
    assert codes(sent(subject=wrong)) == [("invalid_checksum", "subject.id")]
    assert codes(sent(subject=wrong, checksum_override={"reason": "as printed on the licence"})) == []
    assert codes(sent(subject={**subject, "id": "9111"})) == [("invalid_identifier", "subject.id")]
    assert codes(sent(subject={**subject, "scheme": "resident_id"})) == [("invalid_identifier", "subject.id")]


def test_dates_after_today() -> None:
    decision = sample_entries()[1]["decision"]
    assert codes(sent(decision={**decision, "decided_on": "2026-12-06"})) == [("invalid_date", "decision.decided_on")]
    assert codes(sent(decision={**decision, "decided_on": "2026-12-05"})) == []
    late = sent(effective_to="2027-03-31", removed_on="2026-12-06", removal_reason="revoked")
    assert codes(late) == [("invalid_date", "removed_on")]


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"effective_to": "2021-04-30"}, [("invalid_period", "effective_to")]),
        ({"removed_on": "2021-04-30", "removal_reason": "revoked"}, [("invalid_period", "removed_on")]),
        ({"removed_on": "2021-05-01", "removal_reason": "revoked"}, []),
        ({"removed_on": "2022-05-01", "removal_reason": "revoked"}, []),  # the day after its last
        ({"removed_on": "2022-05-02", "removal_reason": "revoked"}, [("invalid_period", "removed_on")]),
    ],
)
def test_periods(over: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert codes(sent(**over)) == expected  # the period runs 2021-05-01 to 2022-04-30


def test_a_dry_run_counts_what_a_run_would_send() -> None:
    summary = dry_run(CSV, UNIT, today=TODAY, batch_size=3)
    assert (summary.read, summary.sendable, summary.messages, summary.refused) == (8, 8, 3, [])
    assert summary.complete
    assert summary.exit_code == 0
    assert dry_run(JSONL, UNIT, today=TODAY).messages == 1
    # Before the samples' latest decision (2026-10-28), that entry is refused, but sent all the same.
    earlier = dry_run(JSONL, UNIT, today=date(2026, 10, 27))
    assert (earlier.sendable, [r.ref for r in earlier.refused]) == (8, ["BJ-TAX-B-2026-0201"])
    assert earlier.exit_code == 3
