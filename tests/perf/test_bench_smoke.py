"""A short run of the benchmark harness so it cannot rot: it checks that every case produced a
row with a figure and a baseline where it has one. It never checks a speed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.perf.run import run_all

pytestmark = [pytest.mark.integration, pytest.mark.perf]


@pytest.mark.timeout(900)  # five suites, each starting its services as processes
async def test_harness_writes_a_row_per_case(stack: object, tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    results = await run_all(
        2000,
        out,
        designation_n=2000,
        latency_seconds=2,
        sharing_n=2000,
        sharing_entries=6000,
        lookup_seconds=2,
        warning_seconds=3,
        cases_n=2000,
        cases_total=5000,
        indicator_seconds=2,
        import_n=2000,
        pipeline_n=2000,
        consumers_n=2000,
    )
    cases = {r.case for r in results}
    assert cases == {
        "raw_aiokafka_produce",
        "raw_aiokafka_consume",
        "raw_asyncpg_copy",
        "consumer_wrapper",
        "consumer_faststream",
        "outbox_relay",
        "designation_drain",
        "designation_latency_500rps",
        "designation_db_floor",
        "sharing_projection",
        "sharing_subject_lookup",
        "sharing_export_jsonl",
        "sharing_export_csv",
        "warning_listing_latency",
        "cases_recording",
        "cases_indicators",
        "import_drain",
        "pipeline_drain",
        "warning_projection",
        "objection_projection",
        "cases_projection",
    }
    rows = list(csv.DictReader(out.open()))
    assert [r["case"] for r in rows] == [r.case for r in results]
    for row in rows:
        assert float(row["rate"]) > 0
        assert row["commit"]
    by_case = {r["case"]: r for r in rows}
    assert by_case["consumer_wrapper"]["baseline_case"] == "raw_asyncpg_copy"
    assert float(by_case["consumer_wrapper"]["ratio"]) > 0
    faststream_extra = dict(kv.split("=", 1) for kv in by_case["consumer_faststream"]["extra"].split(";"))
    assert float(faststream_extra["vs_consumer_wrapper"]) > 0
    assert by_case["outbox_relay"]["baseline_case"] == "raw_aiokafka_produce"
    assert by_case["designation_drain"]["baseline_case"] == "raw_aiokafka_consume"
    assert float(by_case["designation_drain"]["peak_rss_mb"]) > 0, "the service process was sampled"
    drain_extra = dict(kv.split("=", 1) for kv in by_case["designation_drain"]["extra"].split(";"))
    cores = dict(kv.split(":") for kv in drain_extra["cores"].split(" "))
    assert float(cores["designation"]) > 0, "the service processes' CPU was measured"
    assert float(drain_extra["of_db_floor"]) > 0
    assert by_case["designation_db_floor"]["baseline_case"] == "raw_aiokafka_consume"
    assert "p99_ms=" in by_case["designation_latency_500rps"]["extra"]
    assert by_case["designation_latency_500rps"]["baseline_case"] == "raw_aiokafka_hop_p99"
    assert by_case["sharing_projection"]["baseline_case"] == "raw_aiokafka_consume"
    assert by_case["sharing_subject_lookup"]["baseline_case"] == "raw_asyncpg_pk_lookup_p99"
    assert by_case["sharing_export_jsonl"]["baseline_case"] == "raw_asyncpg_copy_out"
    assert float(by_case["sharing_export_csv"]["peak_rss_mb"]) > 0, "the service process was sampled"
    assert "p99_ms=" in by_case["warning_listing_latency"]["extra"]
    assert by_case["cases_recording"]["baseline_case"] == "raw_aiokafka_consume"
    assert by_case["cases_indicators"]["baseline_case"] == "raw_sql_aggregate_p99"
    indicators_extra = dict(kv.split("=", 1) for kv in by_case["cases_indicators"]["extra"].split(";"))
    assert by_case["import_drain"]["baseline_case"] == "raw_asyncpg_copy_entries"
    import_extra = dict(kv.split("=", 1) for kv in by_case["import_drain"]["extra"].split(";"))
    assert float(import_extra["answered_s"]) <= float(import_extra["seconds"])
    pipeline_extra = dict(kv.split("=", 1) for kv in by_case["pipeline_drain"]["extra"].split(";"))
    caught_up = dict(kv.split(":") for kv in pipeline_extra["caught_up_s"].split(" "))
    assert set(caught_up) == {"designation", "sharing", "warning", "objection", "cases"}
    for consumer in ("warning", "objection", "cases"):
        row = by_case[f"{consumer}_projection"]
        assert row["baseline_case"] == "raw_aiokafka_consume"
        assert float(dict(kv.split("=", 1) for kv in row["extra"].split(";"))["of_db_floor"]) > 0
    assert int(indicators_extra["cases"]) >= 5000, "topped up to at least cases_total (a reused stack has more)"
