"""The operator dashboard: the page and its JSON twin carry the same numbers (each marked with a
stable data-metric), the page needs nothing from elsewhere, the links lead to the other services,
a service's domain panels are rendered (and a failing hook costs only them)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest
from credit_common.http.app import create_http_app
from credit_common.http.dashboard import mount_dashboard
from credit_common.http.panels import Bar, BarChart, KeyValues, Link, Panel, Stat, Table
from credit_common.service import Runtime, ServiceDefinition, TimerSpec
from credit_common.settings import Settings

from tests.support.tokens import auth_headers

REQUESTS = "credit.designation.requests.v1"
EVENTS = "credit.designation.events.v1"


class Numbers(HTMLParser):
    """Every element with data-metric: key -> (data-value, its text)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, tuple[str, str]] = {}
        self.duplicates: list[str] = []
        self._open: list[tuple[str, str, str, list[str]]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if "data-metric" in a:
            self._open.append((tag, a["data-metric"] or "", a.get("data-value") or "", []))

    def handle_data(self, data: str) -> None:
        for _, _, _, text in self._open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _, key, value, text = self._open.pop()
            if key in self.found:
                self.duplicates.append(key)
            self.found[key] = (value, "".join(text))


def parse(html: str) -> Numbers:
    p = Numbers()
    p.feed(html)
    return p


async def noop(rt: Runtime) -> None:
    return None


async def panels(rt: Runtime) -> Sequence[Panel]:
    cached = await rt.dashboard.cached("lists", lambda: asyncio.sleep(0, {"red": 3, "black": 7}))
    return [
        KeyValues("active", "Active", [Stat(k, k, v) for k, v in cached.value.items()], note=cached.note),
        KeyValues("estimate", "Estimate", [Stat("rows", "rows", 2_000_000, approx=True)]),
        BarChart(
            "per_unit",
            "Open per unit",
            [
                Bar("110108-SAT", "110108-SAT", (3, 1), href="/v1/units/110108-SAT/inbox"),
                Bar("100000-SAT", "x", (0, 2)),
            ],
            series=("objection_open", "objection_overdue"),
        ),
        Table(
            "recent",
            "Recent",
            ["designation", "subject", "facts"],
            [
                [
                    Link("d-1", "/v1/designations/d-1"),
                    Link("91110000X", "/v1/subjects/91110000X", service="sharing"),
                    "<script>alert(1)</script>",
                ],
                [Link("bad", "javascript:alert(1)"), None, 1.5],
            ],
        ),
    ]


def runtime(hook: Any = panels, **settings: Any) -> Runtime:
    definition = ServiceDefinition(
        name="designation",
        title="Designation service",
        description="test",
        timers=[TimerSpec("expiry", 5.0, noop)],
        dashboard=hook,
    )
    rt = Runtime(definition, Settings(**settings))
    m = rt.metrics
    rt.dashboard.sampler.sample(now=time.time() - 5, mono=time.monotonic() - 5)  # started 5 s ago
    m.messages_consumed.labels(topic=REQUESTS, type="credit.designation.designate").inc(12)
    m.messages_published.labels(topic=EVENTS).inc(9)
    m.rejections.labels(code="invalid_checksum").inc(2)
    m.rejections.labels(code="unknown_unit").inc()
    m.deadletters.labels(topic=REQUESTS).inc()
    m.batches.labels(topic=REQUESTS, path="optimistic").inc(7)
    m.batches.labels(topic=REQUESTS, path="contended").inc()
    m.batches.labels(topic=REQUESTS, path="locking").inc(2)
    m.batches.labels(topic=EVENTS, path="locking").inc()
    for seconds in (0.002, 0.003, 0.004, 0.2):
        m.processing_seconds.labels(topic=REQUESTS).observe(seconds)
        m.event_latency_seconds.labels(topic=REQUESTS).observe(seconds * 10)
    m.consumer_lag.labels(topic=REQUESTS, partition="0").set(5)
    m.consumer_lag.labels(topic=REQUESTS, partition="1").set(0)
    m.consumer_lag.labels(topic=REQUESTS, partition="7").set(99)  # held by another instance now
    held = [SimpleNamespace(topic=REQUESTS, partition=0), SimpleNamespace(topic=REQUESTS, partition=1)]
    consumer = SimpleNamespace(
        group_id="designation", topics=[REQUESTS], consumer=SimpleNamespace(assignment=lambda: held)
    )
    rt.consumers.append(cast(Any, consumer))  # a stand-in: group, topics, assignment
    rt.timer_state["expiry"] = {"runs": 4, "last_error": None, "last_run": "2026-11-25T10:00:00+08:00"}
    return rt


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    rt = runtime()
    app = create_http_app(rt.name, rt.definition.title, "test", rt.health, rt.registry)
    mount_dashboard(app, rt.dashboard)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ops.example:8101", headers=auth_headers()
    ) as c:
        yield c, rt


async def test_the_page_shows_exactly_the_numbers_of_the_json(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = client
    page = await http.get("/")
    doc = (await http.get("/dashboard.json")).json()

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    numbers = parse(page.text)
    assert numbers.duplicates == []
    assert set(numbers.found) == set(doc["metrics"])
    for key, (value, shown) in numbers.found.items():
        assert orjson.loads(value) == doc["metrics"][key], key
        if not key.startswith("health."):  # a health badge reads up/down
            assert shown == ("–" if doc["metrics"][key] is None else value), key


async def test_the_operations_numbers(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = client
    m = (await http.get("/dashboard.json")).json()["metrics"]

    assert m["total.consumed"] == 12
    assert m["total.published"] == 9
    assert m["topic.credit.designation.requests.v1.in_total"] == 12
    assert m["topic.credit.designation.events.v1.out_total"] == 9
    assert m["rate.consumed"] == pytest.approx(12 / 5, rel=0.1)  # 12 messages in the 5 s since the sample
    assert m["rejections.invalid_checksum"] == 2
    assert m["rejections.unknown_unit"] == 1
    assert m["total.rejections"] == 3
    assert m["total.deadletters"] == 1
    assert m["deadletters.credit.designation.requests.v1"] == 1
    # Batches by path, summed over topics: a contended batch counts again where it was applied.
    assert (m["batches.optimistic"], m["batches.locking"], m["batches.contended"]) == (7, 3, 1)
    # Lag of the partitions this instance holds only (partition 7's gauge is stale).
    assert m["lag.designation.credit.designation.requests.v1.0"] == 5
    assert m["lag.designation.credit.designation.requests.v1.1"] == 0
    assert "lag.designation.credit.designation.requests.v1.7" not in m
    assert m["lag.total"] == 5
    assert m["lag.designation.credit.designation.requests.v1"] == 5
    # Four observations since the first sample: 2, 3, 4 and 200 ms.
    assert m["latency.processing.all.count"] == 4
    # Interpolated in the buckets as Prometheus's histogram_quantile does: rank 2 of 4 falls in
    # (2.5, 5] ms holding 3 and 4 ms, one below it: 2.5 + 2.5 x 1/2; rank 3.96 in (100, 250] ms.
    assert m["latency.processing.all.p50"] == pytest.approx(3.75)
    assert m["latency.processing.all.p99"] == pytest.approx(100.0 + 150.0 * 0.96)
    assert m["latency.event.credit.designation.requests.v1.count"] == 4
    assert m["timer.expiry.runs"] == 4
    assert m["outbox.pending"] is None  # no relay: not started
    assert m["uptime_s"] >= 0


async def test_the_domain_panels(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = client
    page = await http.get("/")
    m = (await http.get("/dashboard.json")).json()["metrics"]

    assert m["domain.active.red"] == 3
    assert m["domain.active.black"] == 7
    assert m["domain.per_unit.110108-SAT.objection_open"] == 3
    assert m["domain.per_unit.110108-SAT.objection_overdue"] == 1
    assert m["domain.per_unit.100000-SAT.objection_overdue"] == 2
    assert m["domain.recent.rows"] == 2
    assert m["domain.estimate.rows"] == 2_000_000
    assert "approx." in page.text
    assert "objection open" in page.text  # series keys shown as words
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert 'href="javascript:' not in page.text


async def test_links_lead_to_the_other_services_and_this_ones_tools(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = client
    tags = parse((await http.get("/")).text).tags
    hrefs = {a["href"] for tag, a in tags if tag == "a"}

    assert {"/", "/docs", "/docs/asyncapi", "/metrics", "/dashboard.json"} <= hrefs
    for port in (8102, 8103, 8104, 8105):
        assert f"http://ops.example:{port}/" in hrefs
    assert "http://ops.example:8102/v1/subjects/91110000X" in hrefs  # a cell linking into sharing
    assert "/v1/units/110108-SAT/inbox" in hrefs
    current = [a for tag, a in tags if tag == "a" and a.get("aria-current") == "page"]
    assert [a["href"] for a in current] == ["/"]


async def test_configured_links_replace_the_default_ports() -> None:
    rt = runtime(credit_dashboard_links={"sharing": "https://sharing.example/ops/"})
    app = create_http_app(rt.name, rt.definition.title, "test", rt.health, rt.registry)
    mount_dashboard(app, rt.dashboard)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h", headers=auth_headers()
    ) as http:
        links = (await http.get("/dashboard.json")).json()["links"]
        page = (await http.get("/")).text
    assert links["sharing"] == "https://sharing.example/ops/"
    assert links["warning"] == "http://h:8103/"
    assert "https://sharing.example/ops/v1/subjects/91110000X" in page


async def test_the_page_needs_nothing_from_elsewhere(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = client
    page = await http.get("/")
    tags = parse(page.text).tags

    assert not [a for tag, a in tags if tag in ("script", "img", "iframe") and a.get("src")]
    assert not [tag for tag, _ in tags if tag == "link"]
    csp = page.headers["content-security-policy"]
    for block in ("style", "script"):
        (inline,) = re.findall(rf"<{block}>(.*?)</{block}>", page.text, re.S)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp, block
    assert "default-src 'none'" in csp


async def test_the_page_reloads_itself_unless_asked_not_to(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, _ = client
    default = (await http.get("/")).text
    assert 'data-refresh="5"' in default
    assert 'http-equiv="refresh" content="5"' in default
    never = (await http.get("/?refresh=0")).text
    assert 'data-refresh="0"' in never
    assert "http-equiv" not in never


async def test_page_and_json_share_one_snapshot_for_a_while(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    http, rt = client
    first = (await http.get("/dashboard.json")).json()
    rt.metrics.messages_consumed.labels(topic=REQUESTS, type="credit.designation.designate").inc(100)
    page = parse((await http.get("/")).text)
    assert page.found["total.consumed"][0] == str(first["metrics"]["total.consumed"])

    rt.settings.credit_dashboard_cache_s = 0.0
    assert (await http.get("/dashboard.json")).json()["metrics"]["total.consumed"] == 112


async def test_a_failing_hook_costs_only_the_domain_panels() -> None:
    async def broken(rt: Runtime) -> Sequence[Panel]:
        raise RuntimeError("relation does not exist")

    rt = runtime(broken)
    app = create_http_app(rt.name, rt.definition.title, "test", rt.health, rt.registry)
    mount_dashboard(app, rt.dashboard)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h", headers=auth_headers()
    ) as http:
        page = await http.get("/")
    assert page.status_code == 200
    assert "relation does not exist" in page.text
    assert 'data-metric="total.consumed"' in page.text


async def test_a_cached_answer_is_kept_for_its_ttl_and_fifty_times_its_cost() -> None:
    rt = runtime(None)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert (await rt.dashboard.cached("k", compute, min_ttl=60)).value == 1
    assert (await rt.dashboard.cached("k", compute, min_ttl=60)).value == 1
    assert (await rt.dashboard.cached("other", compute, min_ttl=0)).value == 2
    await asyncio.sleep(0.01)
    got = await rt.dashboard.cached("other", compute, min_ttl=0)
    assert got.value == 3
    assert got.took_s < 0.01
    assert "as of" in got.note


async def test_a_hook_that_names_a_number_twice_is_an_error_not_a_broken_page() -> None:
    async def twice(rt: Runtime) -> Sequence[Panel]:
        return [KeyValues("k", "K", [Stat("n", "n", Decimal("1.5")), Stat("n", "again", 2)])]

    async def decimal(rt: Runtime) -> Sequence[Panel]:
        return [KeyValues("k", "K", [Stat("n", "n", Decimal("1.5")), Stat("flag", "flag", True)])]

    for hook, expected in ((twice, None), (decimal, {"domain.k.n": 1.5, "domain.k.flag": 1})):
        rt = runtime(hook)
        app = create_http_app(rt.name, rt.definition.title, "test", rt.health, rt.registry)
        mount_dashboard(app, rt.dashboard)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://h", headers=auth_headers()
        ) as http:
            doc = (await http.get("/dashboard.json")).json()
        domain = {k: v for k, v in doc["metrics"].items() if k.startswith("domain.")}
        if expected is None:
            assert domain == {}
            assert doc["panels"][0]["kind"] == "error"
            assert "given twice" in doc["panels"][0]["error"]
        else:
            assert domain == expected
