"""Expiry: an entry leaves its list (`expired`) once its last day is over, Asia/Shanghai, by the
platform clock. A second designation process, its clock moved by CREDIT_NOW to just after
midnight following the entry's effective_to, removes it through its expiry timer."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from credit_common.clock import start_of_local_day
from credit_common.outcomes import derived_id

from tests.support.processes import ServiceProcess

from .conftest import INSTANCE, Departments, designate, kinds, subject_of, today

pytestmark = pytest.mark.integration

TIME_TRAVELLER_PORT = 18111


@kinds()
async def test_entry_expires_after_its_last_day(departments: Departments, kind: str) -> None:
    """Designated now with effective_to = tomorrow (a valid period today); a process whose clock
    reads 00:00:05 (+08:00) on the day after effective_to emits `credit.designation.removed`
    with reason `expired`, stamped at the start of that day, within the deadline."""
    start = today()
    last_day = start + timedelta(days=1)
    event = designate(
        "black",
        "taxation-black",
        subject_of(kind),
        decided_on=start,
        effective_from=start.isoformat(),
        effective_to=last_day.isoformat(),
    )
    record = await departments.designated(event)
    assert record["effective_to"] == last_day.isoformat()

    due = start_of_local_day(last_day + timedelta(days=1))
    clock_start = (due + timedelta(seconds=5)).isoformat()
    assert clock_start.endswith("+08:00"), clock_start
    traveller = ServiceProcess("designation", TIME_TRAVELLER_PORT, instance=INSTANCE, env={"CREDIT_NOW": clock_start})
    try:
        await traveller.start()
        removed = await departments.collector.wait_for(
            "credit.designation.events.v1",
            lambda e: (
                e["type"] == "credit.designation.removed"
                and e["data"]["record"]["designation_id"] == record["designation_id"]
            ),
            timeout=60.0,
        )
    finally:
        await traveller.stop()
    (expired,) = removed
    data = expired["data"]
    assert data["reason"] == "expired"
    assert "related_id" not in data
    assert expired["_key"] == record["subject"]["id"]
    assert expired["source"] == "platform/designation"
    removed_at = datetime.fromisoformat(data["record"]["removed_at"])
    assert removed_at == due
    assert removed_at.utcoffset() == timedelta(hours=8)
    assert datetime.fromisoformat(expired["time"]) == due
    assert data["record"] == {
        **record,
        "status": "removed",
        "removal_reason": "expired",
        "removed_at": data["record"]["removed_at"],
    }
    # The subject is told, once, with an id derived from the removal's (whoever emits it, whenever).
    (told,) = await departments.collector.wait_for(
        "credit.subject.notices.v1",
        lambda e: e["type"] == "credit.notice.removed" and e["data"]["designation_id"] == record["designation_id"],
        timeout=60.0,
    )
    assert told["data"] == {
        "subject": record["subject"],
        "designation_id": record["designation_id"],
        "reason": "expired",
    }
    assert told["id"] == derived_id(expired["id"], "designation", "credit.notice.removed")
    assert (told["_key"], datetime.fromisoformat(told["time"])) == (record["subject"]["id"], due)
    current = await departments.record(record["designation_id"])
    assert current["status"] == "removed"
    assert current["removal_reason"] == "expired"
