"""The cases service: wiring only (consumer, HTTP routes). Rules live in domain.py,
load-decide-save in handlers.py, SQL in store.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from credit_common.clock import local_today
from credit_common.contracts import types as T
from credit_common.http.cursors import decode_cursor, encode_cursor
from credit_common.http.problems import Problem
from credit_common.messaging import topics
from credit_common.service import ConsumerSpec, Runtime, ServiceDefinition, run
from fastapi import FastAPI, Query

from . import campaigns, domain, store
from .dashboard import panels
from .handlers import CasesHandlers
from .indicators import indicator_report

NAME = "cases"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
Year = Annotated[int | None, Query(ge=2000, le=2100, description="calendar year (default: this year)")]
Province = Annotated[str | None, Query(pattern=r"^\d{2}0000$", description="6-digit province code, e.g. 110000")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def consumers(rt: Runtime) -> Sequence[ConsumerSpec]:
    handlers = CasesHandlers(rt)
    rt.extras["handlers"] = handlers
    bus = handlers.bus()
    return [
        ConsumerSpec(
            name="",
            # MOUs, measures and units come from the process's reference cache (rt.reference),
            # which follows credit.reference.v1.
            topics=[topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS],
            batch_handler=bus,
            request_types=bus.request_types,
            request_topics=[topics.ENFORCEMENT_ACTIONS],
        )
    ]


def _case_doc(row: Any) -> dict[str, Any]:
    return dict(row)


def routes(app: FastAPI, rt: Runtime) -> None:
    campaigns.routes(app, rt)

    def year_or_now(year: int | None) -> int:
        return year if year is not None else local_today(rt.clock).year

    def after_of(cursor: str | None, scope: dict[str, Any]) -> str:
        return str(decode_cursor(cursor, scope)["after"]) if cursor else ""

    def catalogue_measures() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for mou in rt.reference.catalog.mous():
            for m in mou.measures:
                out[m.code] = {
                    "measure": m.code,
                    "mou": mou.code,
                    "measure_kind": m.measure_kind,
                    "list": m.list,
                    "fields": list(mou.fields),
                    "implementing_fields": list(m.implementing_fields),
                    "description": m.description,
                }
        return out

    @app.get("/v1/cases", summary="Enforcement cases, filtered by province, year (applied on) and measure")
    async def get_cases(
        province: Province = None,
        year: Year = None,
        measure: Annotated[str | None, Query(max_length=64)] = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        scope = {"list": "cases", "province": province, "year": year, "measure": measure}
        rows = await store.list_cases(
            rt.db,
            year=year,
            province=province,
            measure=measure,
            typical=False,
            after=after_of(cursor, scope),
            limit=limit,
        )
        next_cursor = encode_cursor({**scope, "after": rows[-1]["case_id"]}) if len(rows) >= limit else None
        return {"cases": [_case_doc(r) for r in rows], "next_cursor": next_cursor}

    @app.get(
        "/v1/cases/typical",
        summary="Typical cases for public display (public standards only, natural persons' numbers masked)",
    )
    async def get_typical(
        province: Province = None,
        year: Year = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        scope = {"list": "typical", "province": province, "year": year}
        rows = await store.list_cases(
            rt.db,
            year=year,
            province=province,
            measure=None,
            typical=True,
            after=after_of(cursor, scope),
            limit=limit,
        )
        catalog = rt.reference.catalog
        out = []
        for r in rows:
            unit = catalog.unit(r["unit"])
            found = catalog.measure(r["measure"])
            out.append(
                {
                    "case_id": r["case_id"],
                    "subject": domain.public_subject(r["subject"]),
                    "list": r["list"],
                    "field": r["field"],
                    "measure": r["measure"],
                    "measure_kind": r["measure_kind"],
                    "measure_description": found[1].description if found else None,
                    "unit": r["unit"],
                    "unit_name": unit.name if unit else None,
                    "province": r["province"],
                    "applied_on": r["applied_on"],
                    "outcome": r["outcome"],
                    "description": r["description"],
                    "media": r["media"],
                }
            )
        next_cursor = encode_cursor({**scope, "after": rows[-1]["case_id"]}) if len(rows) >= limit else None
        return {"cases": out, "next_cursor": next_cursor}

    @app.get("/v1/cases/{case_id}", summary="One enforcement case, as recorded")
    async def get_case(case_id: str) -> dict[str, Any]:
        row = await store.get_case(rt.db, case_id)
        if row is None:
            raise Problem(404, "Unknown case", f"no case {case_id}")
        return _case_doc(row)

    @app.get(
        "/v1/indicators",
        summary="Case-quota indicators nationally and per province: year-to-date value, projection, status",
    )
    async def get_indicators(year: Year = None, province: Province = None) -> dict[str, Any]:
        return await indicator_report(rt, year_or_now(year), province)

    @app.get(
        "/v1/efficacy",
        summary="Per measure: cases, subjects reached, how many later left the black list by restoration",
    )
    async def get_efficacy(year: Year = None) -> dict[str, Any]:
        y = year_or_now(year)
        register = catalogue_measures()
        measures = []
        for r in await store.efficacy(rt.db, y):
            known = register.get(r["measure"], {})
            median = r["median_days"]
            measures.append(
                {
                    "measure": r["measure"],
                    "mou": known.get("mou"),
                    "measure_kind": known.get("measure_kind"),
                    "cases": r["cases"],
                    "subjects_reached": r["subjects"],
                    "restored_subjects": r["restored"],
                    "median_days_to_restoration": None if median is None else float(median),
                }
            )
        return {"year": y, "measures": measures}

    @app.get(
        "/v1/progress",
        summary="Implementation progress: fields with a signed MOU but no designation yet, units with no liaison",
    )
    async def get_progress() -> dict[str, Any]:
        catalog = rt.reference.catalog
        today = local_today(rt.clock)
        return {
            "as_of": today,
            "fields_without_designations": domain.fields_without_designations(
                catalog, await store.designated_fields(rt.db), today
            ),
            "units_without_liaison": domain.units_without_liaison(catalog),
        }

    @app.get("/v1/tallies", summary="The year's cases by province, unit, field, list, measure and month")
    async def get_tallies(year: Year = None, province: Province = None) -> dict[str, Any]:
        y = year_or_now(year)
        return {"year": y, "province": province, "by": await store.tallies(rt.db, y, province)}

    @app.get("/v1/measures", summary="The MOU measures register, with the cases recorded under each")
    async def get_measures() -> dict[str, Any]:
        totals = await store.measure_totals(rt.db)
        register = catalogue_measures()
        return {"measures": [{**m, "cases": totals.get(code, 0)} for code, m in sorted(register.items())]}

    @app.get("/v1/stats", summary="Designations known, objections open, cases by kind")
    async def get_stats() -> dict[str, Any]:
        return {"counts": await store.counts(rt.db)}


definition = ServiceDefinition(
    name=NAME,
    title="Cases service",
    description=(
        "Enforcement cases of the MOU reward and punishment measures: each report checked against the "
        "entry, the MOU measures register and the reporting unit, recorded and announced; tallies, the "
        "case-quota indicators, efficacy per measure and implementation progress."
    ),
    migrations=Path(__file__).parent / "migrations",
    consumers=consumers,
    routes=routes,
    dashboard=panels,
    publishes={
        topics.CASES_EVENTS: [T.CASE_RECORDED],
    },
)


def main() -> None:
    run(definition)


if __name__ == "__main__":
    main()
