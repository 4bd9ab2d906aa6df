"""The operator dashboards of designation, sharing, warning and objection as real processes (ports
18191-18194) against the real broker and database: each page carries exactly the numbers of its
JSON twin, links to the others, and its domain numbers are what the service's own API answers. A
designation request sent through designation's HTTP ingress shows on designation's and sharing's
dashboards.

Other tests may run processes of the same services at the same time (same consumer groups, same
schemas): the checks read what the database holds, never this instance's counters, and poll."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import orjson
import pytest
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.settings import Settings

from tests.support.dashboards_metrics import load_dashboards, series_names_from_exposition, unknown_metric_names
from tests.support.events import poll
from tests.support.processes import ServiceProcess, new_instance, running
from tests.support.signing import sign
from tests.support.subjects import new_uscc
from tests.support.tokens import auth_headers

pytestmark = pytest.mark.integration

PORTS = {"designation": 18191, "sharing": 18192, "warning": 18193, "objection": 18194, "cases": 18195}
LINKS = {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}
PAGED_LIST_LIMIT = 50_000  # lists longer than this are not paged through to be counted
RECENT = 10  # rows of designation's tables of the latest


class Page(HTMLParser):
    """The numbers (data-metric -> data-value), the links and the snapshot time of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.numbers: dict[str, Any] = {}
        self.links: list[str] = []
        self.generated_at: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-metric" in a:
            self.numbers[a["data-metric"] or ""] = orjson.loads(a.get("data-value") or "null")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "main":
            self.generated_at = a.get("data-generated-at")


@pytest.fixture(scope="module")
async def services(stack: Settings) -> AsyncIterator[dict[str, ServiceProcess]]:
    env = {"CREDIT_DASHBOARD_LINKS": orjson.dumps(LINKS).decode(), "CREDIT_DASHBOARD_CACHE_S": "1"}
    instance = new_instance()
    procs = {name: ServiceProcess(name, port, env, instance=instance) for name, port in PORTS.items()}
    async with running(procs):
        yield procs


async def dashboard(svc: ServiceProcess) -> tuple[Page, dict[str, Any]]:
    """The page and the JSON of one snapshot (asked again until both come from the same one)."""
    async with svc.client() as http:
        for _ in range(20):
            doc = (await http.get("/dashboard.json")).json()
            page = await http.get("/")
            assert page.status_code == 200
            parsed = Page(page.text)
            if parsed.generated_at == doc["generated_at"]:
                return parsed, doc
    raise AssertionError(f"{svc.name}: page and JSON never came from one snapshot")


def panel(doc: dict[str, Any], key: str) -> dict[str, Any]:
    (found,) = [p for p in doc["panels"] if p["key"] == key]
    return found


def first_column(doc: dict[str, Any], key: str) -> list[Any]:
    return [row[0]["text"] if isinstance(row[0], dict) else row[0] for row in panel(doc, key)["rows"]]


async def pages(http: httpx.AsyncClient, path: str, items: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paged list endpoint."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        doc = (await http.get(path, params={**params, **({"cursor": cursor} if cursor else {})})).json()
        out += doc[items]
        cursor = doc.get("next_cursor")
        if not cursor:
            return out


# ---------------------------------------------------------------------------------------- tests


async def test_each_page_shows_the_numbers_of_its_json_and_links_the_others(
    services: dict[str, ServiceProcess],
) -> None:
    for name, svc in services.items():
        page, doc = await dashboard(svc)
        assert page.numbers == doc["metrics"], name
        assert doc["service"] == name
        assert {k: v for k, v in doc["metrics"].items() if k.startswith("health.")} == {
            f"health.{check}": 1 for check in ("kafka", "postgres", "reference", "consumers", "outbox_relay", "timers")
        }
        assert any(k.startswith("domain.") for k in doc["metrics"]), name
        assert any(p["kind"] == "error" for p in doc["panels"]) is False, doc["panels"]
        for other, base in LINKS.items():
            assert (base + "/" if other != name else "/") in page.links, (name, other)
        assert {"/docs", "/docs/asyncapi", "/metrics", "/dashboard.json"} <= set(page.links)
    # The links lead somewhere: each service's page, followed from designation's.
    page, _ = await dashboard(services["designation"])
    async with httpx.AsyncClient(timeout=10.0, headers=auth_headers()) as http:
        for base in LINKS.values():
            assert (await http.get(base + "/")).status_code == 200


async def test_a_request_shows_on_the_designation_and_sharing_dashboards(
    services: dict[str, ServiceProcess],
) -> None:
    designation, sharing = services["designation"], services["sharing"]
    subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Dashboard Example Co., Ltd."}
    request = {
        "specversion": "1.0",
        "id": new_id(),
        "source": "unit/100000-SAT",
        "type": "credit.designation.designate",
        "time": datetime.now(UTC).isoformat(),
        "subject": subject["id"],
        "datacontenttype": "application/json",
        "data": {
            "list": "red",
            "standard": "taxation-red",
            "subject": subject,
            "decision": {
                "document_no": f"DASH-{uuid.uuid4().hex[:8]}",
                "decided_on": datetime.now(UTC).date().isoformat(),
                "facts": "Paid every tax on time for three years.",
            },
        },
    }
    async with designation.client() as http:
        posted = await http.post(
            "/v1/requests", content=orjson.dumps(sign(request)), headers={"content-type": CONTENT_TYPE}
        )
        assert posted.status_code == 202, posted.text

        async def answered() -> dict[str, Any] | None:
            doc = (await http.get(f"/v1/requests/{request['id']}")).json()
            return doc if doc["status"] != "pending" else None

        answer = await poll(answered, timeout=90.0, interval=0.5)
        assert answer["status"] == "accepted", answer
        designation_id = answer["result_id"]
        assert (await http.get(f"/v1/designations/{designation_id}")).json()["list"] == "red"

    async with designation.client() as http:
        await designation_shows(designation, http, request, designation_id)
    async with sharing.client() as http:

        async def on_sharing() -> bool:
            doc = (await http.get(f"/v1/subjects/{subject['id']}")).json()
            return any(e["list"] == "red" and e["status"] == "active" for e in doc.get("entries", []))

        await poll(on_sharing, timeout=180, interval=0.5)
        await sharing_shows(sharing, http, designation_id)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def designation_shows(
    svc: ServiceProcess, http: httpx.AsyncClient, request: dict[str, Any], designation_id: str
) -> None:
    """The latest designations and requests are the latest (the one sent, or only later ones), and
    each row is what GET /v1/designations/{id} and GET /v1/requests/{id} answer."""
    sent_at = _at(request["time"])

    def latest(rows: list[list[Any]], key: str, at: int) -> bool:
        return any(r[0]["text"] == key for r in rows) or (
            len(rows) == RECENT and min(_at(r[at]) for r in rows) > sent_at
        )

    async def agrees() -> dict[str, Any] | None:
        page, doc = await dashboard(svc)
        designations, requests = panel(doc, "recent")["rows"], panel(doc, "requests_recent")["rows"]
        if not (latest(designations, designation_id, 6) and latest(requests, request["id"], 5)):
            return None
        for row in designations:
            record = (await http.get(f"/v1/designations/{row[0]['text']}")).json()
            status = record["status"] if record["status"] == "active" else f"removed ({record['removal_reason']})"
            if [row[1], row[2], row[3], row[5]] != [record["list"], record["standard"], record["unit"], status]:
                return None
        for row in requests:
            answer = (await http.get(f"/v1/requests/{row[0]['text']}")).json()
            if row[3] != answer["status"]:
                return None
        return page.numbers

    numbers = await poll(agrees, timeout=90.0, interval=0.5)
    assert numbers["domain.active.red"] >= 1
    assert numbers["domain.active.total"] == sum(
        numbers[f"domain.active.{n}"] for n in ("red", "black", "key_scrutiny")
    )


async def sharing_shows(svc: ServiceProcess, http: httpx.AsyncClient, entry_id: str) -> None:
    """The latest changes are those GET /v1/changes lists (the entry's among them, or only later
    ones), and every list's size is what its snapshot counts."""
    red = await pages_of_changes(http, "red")
    (added,) = [c["seq"] for c in red if c["entry"]["entry_id"] == entry_id and c["type"] == "credit.list.entry_added"]

    async def caught_up() -> dict[str, Any] | None:
        _, doc = await dashboard(svc)
        return doc if doc["metrics"]["domain.feed.last_seq"] >= added else None

    doc = await poll(caught_up, timeout=90.0, interval=0.5)
    rows = panel(doc, "changes")["rows"]
    assert any(r[3] == entry_id for r in rows) or min(r[0] for r in rows) > added
    listed = (await http.get("/v1/changes", params={"after": rows[-1][0] - 1, "limit": len(rows)})).json()["changes"]
    short = {
        "credit.list.entry_added": "added",
        "credit.list.entry_updated": "updated",
        "credit.list.entry_removed": "removed",
    }
    assert [(r[0], r[1], r[2], r[3]) for r in reversed(rows)] == [
        (c["seq"], short[c["type"]], c["list"], c["entry"]["entry_id"]) for c in listed
    ]
    await check_list_sizes(http, doc)
    # The publication delay per unit, as GET /v1/stats/publication gives it (read once a minute).
    delays = {u["unit"]: u for u in (await http.get("/v1/stats/publication")).json()["units"]}
    shown = panel(doc, "publication")
    assert shown["columns"][:5] == ["unit", "entries", "p50", "p90", "max"]
    for unit, entries, *_ in shown["rows"]:
        assert entries <= delays[unit]["entries"]


async def pages_of_changes(http: httpx.AsyncClient, list_: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        got = (await http.get("/v1/changes", params={"after": after, "list": list_, "limit": 10_000})).json()
        out += got["changes"]
        if len(got["changes"]) < 10_000:
            return out
        after = got["changes"][-1]["seq"]


async def check_list_sizes(http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    """Each list's size on the dashboard (as of its last seq), moved on by the changes published
    since, is the size of the list's snapshot at the snapshot's seq."""
    seq = doc["metrics"]["domain.feed.last_seq"]
    checked = 0
    for name in ("red", "black", "key_scrutiny", "warning"):
        size = doc["metrics"][f"domain.lists.{name}.count"]
        if size > PAGED_LIST_LIMIT:
            continue
        entries, snapshot_seq, cursor = 0, None, None
        while True:
            page = (
                await http.get(f"/v1/lists/{name}", params={"limit": 10_000, **({"cursor": cursor} if cursor else {})})
            ).json()
            snapshot_seq = snapshot_seq or page["snapshot_seq"]
            entries += len(page["entries"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert snapshot_seq >= seq
        delta, after = 0, seq
        while after < snapshot_seq:
            got = (await http.get("/v1/changes", params={"after": after, "list": name, "limit": 10_000})).json()
            for change in got["changes"]:
                if change["seq"] <= snapshot_seq:
                    delta += {"credit.list.entry_added": 1, "credit.list.entry_removed": -1}.get(change["type"], 0)
            if len(got["changes"]) < 10_000:  # a page not full: every later change of the list is in it
                break
            after = got["changes"][-1]["seq"]
        assert entries == size + delta, (name, entries, size, delta, seq, snapshot_seq)
        checked += 1
    assert checked >= 2  # red (where the request went) and warning are short lists


async def test_warning_numbers_are_what_its_api_answers(services: dict[str, ServiceProcess]) -> None:
    svc = services["warning"]
    async with svc.client() as http:

        async def agree() -> bool:
            _, doc = await dashboard(svc)
            m = doc["metrics"]
            listed = await pages(http, "/v1/warnings", "warnings", {"status": "listed", "limit": 1000})
            cleared = await pages(http, "/v1/warnings", "warnings", {"status": "cleared", "limit": 1000})
            transfers = {
                s: len(await pages(http, "/v1/transfers", "transfers", {"status": s, "limit": 1000}))
                for s in ("open", "overdue", "closed")
            }
            return (
                m["domain.warning_list.listed"] == len(listed)
                and m["domain.warning_list.cleared"] == len(cleared)
                and all(m[f"domain.transfers.{s}.count"] == n for s, n in transfers.items())
            )

        await poll(agree, timeout=60, interval=0.5)


async def test_objection_numbers_are_what_its_api_answers(services: dict[str, ServiceProcess]) -> None:
    svc = services["objection"]
    async with svc.client() as http:

        async def agree() -> bool:
            _, doc = await dashboard(svc)
            m = doc["metrics"]
            stats = {(r["what"], r["status"]): r["n"] for r in (await http.get("/v1/stats")).json()["counts"]}
            totals = all(
                m[f"domain.pending.{kind}_{status}"] == stats.get((what, status), 0)
                for kind, what in (("objection", "objections"), ("restoration", "applications"))
                for status in ("open", "overdue")
            )
            # Per designating unit: what its inbox lists as routed to it (not escalated to it).
            for bar in panel(doc, "per_unit")["bars"][:5]:
                unit = bar["key"]
                if (await http.get(f"/v1/units/{unit}/inbox", params={"limit": 1})).status_code == 404:
                    continue  # a unit a test put in the catalogue and took out again
                for status in ("open", "overdue"):
                    items = await pages(http, f"/v1/units/{unit}/inbox", "items", {"status": status, "limit": 1000})
                    for kind in ("objection", "restoration"):
                        mine = [i for i in items if i["kind"] == kind and i["role"] == "designating_unit"]
                        if m[f"domain.per_unit.{unit}.{kind}_{status}"] != len(mine):
                            return False
            return totals

        await poll(agree, timeout=60, interval=0.5)


async def test_cases_numbers_are_what_its_api_answers(services: dict[str, ServiceProcess]) -> None:
    svc = services["cases"]
    async with svc.client() as http:

        async def agree() -> bool:
            _, doc = await dashboard(svc)
            m = doc["metrics"]
            body = (await http.get("/v1/indicators")).json()
            national = body["scopes"][0]
            (share,) = [i for i in national["indicators"] if i["code"] == "case_share"]
            tallies = (await http.get("/v1/tallies", params={"year": body["year"]})).json()["by"]["measure"]
            shown = {b["key"]: b["values"][0]["value"] for b in panel(doc, "per_measure")["bars"]}
            provinces = [s["province"] for s in body["scopes"][1:]]
            return (
                m["domain.year.cases"] == national["cases"]
                and m["domain.year.media_reported"] == national["media_reported_cases"]
                and m["domain.year.red_black_designations"] == national["red_black_designations"]
                and m["domain.year.case_share"] == share["value"]
                and all(shown[r["key"]] == r["cases"] for r in tallies if r["key"] in shown)
                and first_column(doc, "indicators") == provinces
            )

        await poll(agree, timeout=60, interval=0.5)


async def test_grafana_dashboards_query_only_what_the_running_services_export(
    services: dict[str, ServiceProcess],
) -> None:
    """deploy/grafana: every metric a dashboard queries is offered by the live /metrics of the
    services it is about (the overview: of any of them)."""
    offered: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=10.0, headers=auth_headers()) as http:
        for name, base in LINKS.items():
            offered[name] = series_names_from_exposition((await http.get(base + "/metrics")).text)
    everything = set().union(*offered.values())
    dashboards = load_dashboards()
    assert set(dashboards) == {f"{name}.json" for name in PORTS} | {"platform.json"}
    for file, dashboard in dashboards.items():
        service = file.removesuffix(".json")
        unknown = unknown_metric_names(dashboard, offered.get(service, everything))
        assert unknown == {}, (file, unknown)
