"""Every operator dashboard in headless Chromium (Debian's `chromium`, driven by Playwright) while
`credit_demo` sends traffic to the five services (processes on ports 18601-18605): the
numbers the rendered page shows are those of the service's `/dashboard.json` for the same snapshot,
traffic is visibly flowing, and once the traffic is over and every group has caught up, the domain
numbers are what the services' APIs answer. A screenshot of each page is saved in
`tests/artifacts/dashboards/` (during the traffic and after it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.events import poll
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance, running
from tests.support.tokens import auth_headers

pytestmark = pytest.mark.integration

PORTS = {"designation": 18601, "sharing": 18602, "warning": 18603, "objection": 18604, "cases": 18605}
BASE = {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboards"
INPUTS = {
    "designation": [topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS],
    "sharing": [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS],
    "warning": [topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS],
    "objection": [topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS],
    "cases": [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS],
}
# Chromium as this machine runs it headless: no sandbox as root, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTANCE = new_instance()  # this module's deployment of the five services
GROUPS = {name: deployment(INSTANCE).group_of(name) for name in PORTS}
OWN_TOPIC = {
    "designation": topics.DESIGNATION_EVENTS,
    "sharing": topics.LISTS_PUBLIC,
    "warning": topics.WARNING_EVENTS,
    "objection": topics.OBJECTION_EVENTS,
    "cases": topics.CASES_EVENTS,
}
READ_NUMBERS = "els => els.map(e => [e.dataset.metric, e.dataset.value])"


@pytest.fixture(scope="module")
async def platform(stack: Settings) -> AsyncIterator[dict[str, ServiceProcess]]:
    env = {"CREDIT_DASHBOARD_LINKS": orjson.dumps(BASE).decode(), "CREDIT_DASHBOARD_CACHE_S": "1"}
    procs = {name: ServiceProcess(name, port, env, instance=INSTANCE) for name, port in PORTS.items()}
    async with running(procs):
        for name in PORTS:  # start from services that have read everything so far
            await wait_caught_up(stack.kafka_bootstrap_servers, GROUPS[name], INPUTS[name], timeout=600)
        yield procs


async def numbers_of(page: Any) -> tuple[str, dict[str, Any]]:
    """The snapshot time and every number the rendered page shows (data-metric -> data-value)."""
    generated = await page.get_attribute("main", "data-generated-at")
    pairs = await page.eval_on_selector_all("[data-metric]", READ_NUMBERS)
    return str(generated), {k: orjson.loads(v or "null") for k, v in pairs}


async def shown_and_json(page: Any, name: str, http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the dashboard in the browser until the page and /dashboard.json are one snapshot;
    check they carry the same numbers; return the numbers and the JSON."""
    for _ in range(20):
        await page.goto(BASE[name] + "/?refresh=0", wait_until="load")
        generated, shown = await numbers_of(page)
        doc = (await http.get(f"{BASE[name]}/dashboard.json")).json()
        if doc["generated_at"] == generated:
            assert shown == doc["metrics"], name
            assert not [p for p in doc["panels"] if p["kind"] == "error"], name
            return shown, doc
    raise AssertionError(f"{name}: the page and the JSON never came from one snapshot")


async def listed(http: httpx.AsyncClient, url: str, items: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        doc = (await http.get(url, params={**params, **({"cursor": cursor} if cursor else {})})).json()
        out += doc[items]
        if not (cursor := doc.get("next_cursor")):
            return out


async def api_agrees(name: str, shown: dict[str, Any], doc: dict[str, Any], http: httpx.AsyncClient) -> bool:
    """The service's domain numbers on its page are what its API answers (traffic over)."""
    b = BASE[name]
    if name == "designation":
        (recent,) = [p for p in doc["panels"] if p["key"] == "recent"]
        ids = [row[0]["text"] for row in recent["rows"]]
        answers = [(await http.get(f"{b}/v1/designations/{i}")).json() for i in ids]
        per_list = sum(shown[f"domain.active.{list_}"] for list_ in ("red", "black", "key_scrutiny"))
        return bool(ids) and [a["designation_id"] for a in answers] == ids and per_list == shown["domain.active.total"]
    if name == "sharing":
        snapshot = (await http.get(f"{b}/v1/lists/warning", params={"limit": 1})).json()
        warning = await listed(http, f"{b}/v1/lists/warning", "entries", {"limit": 1000})
        return bool(
            shown["domain.feed.last_seq"] == snapshot["snapshot_seq"]
            and shown["domain.lists.warning.count"] == len(warning)
        )
    if name == "warning":
        on = await listed(http, f"{b}/v1/warnings", "warnings", {"status": "listed", "limit": 1000})
        return bool(shown["domain.warning_list.listed"] == len(on))
    if name == "objection":
        stats = {(r["what"], r["status"]): r["n"] for r in (await http.get(f"{b}/v1/stats")).json()["counts"]}
        return all(
            shown[f"domain.pending.{kind}_{status}"] == stats.get((what, status), 0)
            for kind, what in (("objection", "objections"), ("restoration", "applications"))
            for status in ("open", "overdue")
        )
    body = (await http.get(f"{b}/v1/indicators")).json()
    national = body["scopes"][0]
    return bool(
        shown["domain.year.cases"] == national["cases"]
        and shown["domain.year.red_black_designations"] == national["red_black_designations"]
    )


@pytest.mark.timeout(300)
async def test_the_api_documentation_renders_with_no_route_to_the_internet(
    platform: dict[str, ServiceProcess],
) -> None:
    """Swagger UI and the AsyncAPI viewer of every service, in a Chromium that can resolve no host
    but this one: each renders the service's operations and messages from its own assets, and
    not one request leaves the host."""
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `deploy/stack.sh browser` installs it"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    offline = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    outside: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=offline)
        page = await browser.new_page(viewport={"width": 1400, "height": 1800}, extra_http_headers=auth_headers())
        page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else outside.append(r.url))
        for name in PORTS:
            await page.goto(f"{BASE[name]}/docs")
            await page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert await page.locator(".swagger-ui .opblock").count() > 3, name
            await page.screenshot(path=str(ARTIFACTS / f"{name}-docs.png"))
            await page.goto(f"{BASE[name]}/docs/asyncapi")
            await page.wait_for_selector("#asyncapi .aui-root", timeout=30_000)
            text = await page.inner_text("#asyncapi")
            assert f"credit.{name}" in text, name  # the document's title, rendered
            assert OWN_TOPIC[name] in text, name  # and its channels
            await page.screenshot(path=str(ARTIFACTS / f"{name}-asyncapi.png"))
        await browser.close()
    assert outside == []


@pytest.mark.timeout(600)
async def test_every_dashboard_in_chromium_during_demo_traffic(
    platform: dict[str, ServiceProcess], stack: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `deploy/stack.sh browser` installs it"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    demo_log = (ARTIFACTS / "demo.log").open("wb")
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "credit_demo",
        "--rate",
        "40",
        "--minutes",
        "0.75",
        "--seed",
        "20261126",
        "--no-wait",
        "--ready-timeout",
        "1",
        stdout=demo_log,
        stderr=demo_log,
        env={**os.environ, "CREDIT_INSTANCE": INSTANCE},
    )
    try:
        async with async_playwright() as pw, httpx.AsyncClient(timeout=30, headers=auth_headers()) as http:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1800}, extra_http_headers=auth_headers())
            await asyncio.sleep(10)  # traffic under way

            # During the traffic: every page shows its JSON's numbers, and messages are flowing.
            flowing = {}
            for name in PORTS:
                shown, _ = await shown_and_json(page, name, http)
                flowing[name] = shown.get("rate.consumed", 0)
                assert any(k.startswith("domain.") for k in shown), name
                await page.screenshot(path=str(ARTIFACTS / f"{name}-during-traffic.png"), full_page=True)
                links = await page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
                for other, base in BASE.items():
                    assert other == name or base + "/" in links, (name, other, links)
            assert flowing["designation"] > 0, flowing
            assert sum(1 for v in flowing.values() if v > 0) >= 3, flowing

            # Once the traffic is over and everyone has caught up, the numbers are the APIs'.
            assert await asyncio.wait_for(demo.wait(), 240) == 0, (ARTIFACTS / "demo.log").read_text()[-2000:]
            for name in PORTS:
                await wait_caught_up(stack.kafka_bootstrap_servers, GROUPS[name], INPUTS[name], timeout=300)
            for name in PORTS:

                async def agrees(name: str = name) -> bool:
                    return await api_agrees(name, *await shown_and_json(page, name, http), http)

                await poll(agrees, timeout=90, interval=1.0)
                await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            await browser.close()
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
        demo_log.close()
    for name in PORTS:
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
