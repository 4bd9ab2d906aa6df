"""The one clock (CREDIT_NOW) and settings read from the environment."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from credit_common.clock import (
    SHANGHAI,
    ManualClock,
    OffsetClock,
    SystemClock,
    clock_from,
    local_today,
    start_of_local_day,
)
from credit_common.settings import Settings


def test_credit_now_starts_the_clock_there_and_it_runs_on() -> None:
    start = datetime(2026, 10, 8, 9, 30, tzinfo=SHANGHAI)
    clock = clock_from(start)
    assert isinstance(clock, OffsetClock)
    first = clock.now()
    assert timedelta(0) <= first - start < timedelta(seconds=1)
    time.sleep(0.02)
    assert clock.now() > first, "the clock runs on from CREDIT_NOW"


def test_no_credit_now_is_the_system_clock() -> None:
    clock = clock_from(None)
    assert isinstance(clock, SystemClock)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)


def test_credit_now_needs_an_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        OffsetClock(datetime(2026, 1, 1, 0, 0))


def test_local_day_is_asia_shanghai() -> None:
    # 16:30 UTC on 30 Sep is 00:30 on 1 Oct in Beijing.
    clock = ManualClock(datetime(2026, 9, 30, 16, 30, tzinfo=UTC))
    assert local_today(clock) == date(2026, 10, 1)
    clock.advance(timedelta(hours=-1))
    assert local_today(clock) == date(2026, 9, 30)
    assert start_of_local_day(date(2026, 10, 1)).astimezone(UTC) == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)


def test_settings_read_the_contract_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/credit")
    monkeypatch.setenv("CREDIT_NOW", "2026-11-25T09:30:00+08:00")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    s = Settings()
    assert s.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert s.database_url == "postgresql://u:p@db:5432/credit"
    assert s.credit_now == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    assert s.log_level == "DEBUG"
    assert s.otel_exporter_otlp_endpoint == "http://collector:4318"


def test_a_deployment_prefixes_schemas_and_groups_and_none_keeps_the_service_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CREDIT_INSTANCE", raising=False)
    plain = Settings()
    assert (plain.schema_of("sharing"), plain.group_of("designation.feedback")) == ("sharing", "designation.feedback")
    monkeypatch.setenv("CREDIT_INSTANCE", "t1a2b3c4")
    mine = Settings()
    assert (mine.schema_of("sharing"), mine.group_of("designation.feedback")) == (
        "t1a2b3c4_sharing",
        "designation.feedback@t1a2b3c4",
    )


@pytest.mark.parametrize("bad", ["T1", "1abc", "a-b", "a_b", "x" * 17, "a b"])
def test_a_deployment_name_is_short_lowercase_letters_and_digits(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """It goes into SQL identifiers (a schema, a role): nothing else may pass."""
    monkeypatch.setenv("CREDIT_INSTANCE", bad)
    with pytest.raises(ValueError, match="credit_instance"):
        Settings()
