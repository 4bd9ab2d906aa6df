"""`make bench` / `python -m tests.perf.run`: every benchmark, each figure beside its raw baseline
measured in the same run, one CSV row per case (tests/perf/results/bench.csv by default)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from credit_common.settings import get_settings

from . import cases, consumers, designation, foundation, imports, pipeline, sharing, warning
from .harness import Result, console, write_csv

DEFAULT_CSV = Path(__file__).parent / "results" / "bench.csv"


SUITES = ("foundation", "designation", "sharing", "warning", "cases", "import", "pipeline", "consumers")


async def run_all(
    n: int,
    csv_path: Path,
    *,
    designation_n: int = 1_000_000,
    designation_instances: int = designation.INSTANCES,
    latency_seconds: float = 30.0,
    sharing_n: int = 200_000,
    sharing_entries: int = 2_000_000,
    lookup_seconds: float = 30.0,
    read_rounds: int = 1,
    warning_seconds: float = 60.0,
    cases_n: int = 200_000,
    cases_total: int = 1_000_000,
    indicator_seconds: float = 30.0,
    import_n: int = 1_000_000,
    pipeline_n: int = 1_000_000,
    consumers_n: int = 200_000,
    only: tuple[str, ...] = SUITES,
) -> list[Result]:
    settings = get_settings()
    results: list[Result] = []
    if "foundation" in only:
        console.print(f"[bold]foundation[/] benchmarks, n={n:,} (Kafka {settings.kafka_bootstrap_servers})")
        results += await foundation.run(settings, n)
    if "designation" in only:
        results += await designation.run(settings, designation_n, latency_seconds, designation_instances)
    if "sharing" in only:
        results += await sharing.run(settings, sharing_n, sharing_entries, lookup_seconds, read_rounds)
    if "warning" in only:
        results += await warning.run(settings, warning_seconds)
    if "cases" in only:
        results += await cases.run(settings, cases_n, cases_total, indicator_seconds)
    if "import" in only:
        results += await imports.run(settings, import_n)
    if "pipeline" in only:
        results += await pipeline.run(settings, pipeline_n)
    if "consumers" in only:
        results += await consumers.run(settings, consumers_n)
    write_csv(csv_path, results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000, help="messages per case")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="append the rows here")
    parser.add_argument("--designation-n", type=int, default=1_000_000, help="designate requests to drain")
    parser.add_argument(
        "--designation-instances", type=int, default=designation.INSTANCES, help="designation service processes"
    )
    parser.add_argument("--latency-seconds", type=float, default=30.0, help="seconds of steady 500 req/s")
    parser.add_argument("--sharing-n", type=int, default=200_000, help="designation events to project")
    parser.add_argument("--sharing-entries", type=int, default=2_000_000, help="active entries for the reads")
    parser.add_argument("--lookup-seconds", type=float, default=30.0, help="seconds of steady 1,000 lookups/s")
    parser.add_argument(
        "--read-rounds", type=int, default=5, help="consecutive rounds of the read path (lookups and exports)"
    )
    parser.add_argument("--warning-seconds", type=float, default=60.0, help="seconds of warning listings")
    parser.add_argument("--cases-n", type=int, default=200_000, help="enforcement reports to record")
    parser.add_argument("--cases-total", type=int, default=1_000_000, help="cases recorded for the indicators")
    parser.add_argument("--indicator-seconds", type=float, default=30.0, help="seconds of indicator requests")
    parser.add_argument("--import-n", type=int, default=1_000_000, help="historic entries to import")
    parser.add_argument("--pipeline-n", type=int, default=1_000_000, help="designate requests through all five")
    parser.add_argument("--consumers-n", type=int, default=200_000, help="events for warning, objection, cases alone")
    parser.add_argument("--only", nargs="*", choices=SUITES, default=list(SUITES))
    args = parser.parse_args(argv)
    results = asyncio.run(
        run_all(
            args.n,
            args.csv,
            designation_n=args.designation_n,
            designation_instances=args.designation_instances,
            latency_seconds=args.latency_seconds,
            sharing_n=args.sharing_n,
            sharing_entries=args.sharing_entries,
            lookup_seconds=args.lookup_seconds,
            read_rounds=args.read_rounds,
            warning_seconds=args.warning_seconds,
            cases_n=args.cases_n,
            cases_total=args.cases_total,
            indicator_seconds=args.indicator_seconds,
            import_n=args.import_n,
            pipeline_n=args.pipeline_n,
            consumers_n=args.consumers_n,
            only=tuple(args.only),
        )
    )
    print()
    for r in results:
        print(r.line())
    print(f"\nCSV rows appended to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
