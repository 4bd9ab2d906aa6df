"""The dashboard's one look: the HTML page rendered from a snapshot (`credit_common.http.dashboard`),
with inline SVG charts, the style sheet and the script of `dashboard_style`. Nothing is fetched from
elsewhere, so it works offline; the Content-Security-Policy allows exactly that style sheet and
that script (by hash) and requests to this service.

Every number is an element with `data-metric` (its stable key) and `data-value` (its JSON value, as
`/dashboard.json` has it under `metrics`); for quantities the text is that same number."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import orjson

from credit_common.http.dashboard_style import SCRIPT, STYLE

SERVICES = ("designation", "sharing", "warning", "objection", "cases")
TOOLS = (("/docs", "API docs"), ("/docs/asyncapi", "AsyncAPI"), ("/metrics", "metrics"), ("/dashboard.json", "JSON"))


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}


# ------------------------------------------------------------------------------------ markup


class Html(str):
    """Markup that is safe as it is (everything else is escaped on the way in)."""

    __slots__ = ()


def text(value: Any) -> Html:
    return value if isinstance(value, Html) else Html(escape("" if value is None else str(value), quote=True))


def join(parts: Sequence[Any], sep: str = "") -> Html:
    return Html(text(sep).join(text(p) for p in parts))


def h(tag: str, *children: Any, **attrs: Any) -> Html:
    """`<tag attrs>children</tag>`; attribute names drop a trailing `_` and turn `_` into `-`;
    None and False attributes are left out, True ones written bare."""
    out = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        out.append(name if value is True else f'{name}="{text(value)}"')
    return Html(f"<{' '.join(out)}>{join([c for c in children if c is not None])}</{tag}>")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def num(stat: dict[str, Any], shown: str | None = None, cls: str = "num") -> Html:
    """A number of the snapshot, marked with its key and value, with its unit."""
    value = stat["value"]
    label = shown if shown is not None else ("–" if value is None else _json(value))
    parts = [
        "≥ " if stat.get("at_least") else None,
        h("span", label, class_=cls, data_metric=stat["key"], data_value=_json(value)),
    ]
    if stat.get("unit") and value is not None:
        parts += [" ", h("span", stat["unit"], class_="unit")]
    if stat.get("hint"):
        parts += [" ", h("span", f"({stat['hint']})", class_="dim")]
    if stat.get("approx"):
        parts += [" ", h("abbr", "approx.", class_="approx", title="an estimate")]
    return join([p for p in parts if p is not None])


def href_of(href: str | None, links: dict[str, str], service: str | None = None) -> str | None:
    """A link target: a path on this service, or on `service`'s dashboard host; anything that is
    neither a path nor http(s) is dropped."""
    if not href:
        return None
    if service is not None:
        base = links.get(service)
        if base is None:
            return None
        return href if base == "/" else base.rstrip("/") + "/" + href.lstrip("/")
    if (href.startswith("/") and not href.startswith("//")) or href.startswith(("http://", "https://")):
        return href
    return None


def a(content: Any, href: str | None) -> Html:
    return h("a", content, href=href) if href else text(content)


# ------------------------------------------------------------------------------------ charts


def sparkline(points: Sequence[Sequence[float]], label: str, width: int = 220, height: int = 40) -> Html:
    """A line over an area: values against time, the axis at 0."""
    box = f"0 0 {width} {height}"
    if len(points) < 2:
        return h("svg", class_="spark", viewBox=box, role="img", aria_label=f"{label}: no history yet")
    t0, t1 = points[0][0], points[-1][0]
    highest = max(p[1] for p in points)
    top = highest or 1.0
    span = (t1 - t0) or 1.0

    def xy(p: Sequence[float]) -> str:
        return f"{(p[0] - t0) / span * width:.1f},{height - 2 - p[1] / top * (height - 4):.1f}"

    line = " L".join(xy(p) for p in points)
    title = f"{label}: highest {highest:g}, last {points[-1][1]:g}, over the last {span / 60:.0f} min"
    return h(
        "svg",
        h("title", title),
        h("path", class_="area", d=f"M0,{height} L{line} L{width},{height} Z"),
        h("path", class_="line", d=f"M{line}"),
        class_="spark",
        viewBox=box,
        preserveAspectRatio="none",
        role="img",
        aria_label=title,
    )


def hbar(values: Sequence[float | None], scale: float, width: int = 200, height: int = 14) -> Html:
    """One horizontal bar, stacked by series (colours s0, s1, ...); `scale` fills the width."""
    rects = [h("rect", class_="track", x=0, y=0, width=width, height=height, rx=2)]
    x = 0.0
    for i, v in enumerate(values):
        if not v or scale <= 0:
            continue
        w = max(1.0, v / scale * width)
        rects.append(h("rect", class_=f"s{i % 6}", x=f"{x:.1f}", y=0, width=f"{w:.1f}", height=height, rx=2))
        x += w
    return h(
        "svg", *rects, class_="hbar", viewBox=f"0 0 {width} {height}", width=width, height=height, aria_hidden="true"
    )


def columns(values: Sequence[float | None], labels: Sequence[str], height: int = 36, step: int = 14) -> Html:
    """One column per value (lag per partition); a partition at 0 shows as a flat grey stub."""
    top = max((v or 0 for v in values), default=0) or 1
    cols = []
    for i, (v, label) in enumerate(zip(values, labels, strict=True)):
        hgt = max(2.0, (v or 0) / top * (height - 2))
        cols.append(
            h(
                "rect",
                h("title", f"partition {label}: {'?' if v is None else int(v)}"),
                class_="s1" if v else "track",
                x=i * step + 1,
                y=f"{height - hgt:.1f}",
                width=step - 3,
                height=f"{hgt:.1f}",
            )
        )
    width = max(1, len(values)) * step
    return h(
        "svg", *cols, class_="cols", viewBox=f"0 0 {width} {height}", width=width, height=height, aria_hidden="true"
    )


def latency_range(ms: Sequence[float | None], width: int = 160, height: int = 14) -> Html:
    """p50, p95 and p99 on a log scale from 0.1 ms to 10 s."""
    lo, hi = math.log10(0.1), math.log10(10_000)

    def x(v: float) -> float:
        return (min(max(math.log10(max(v, 0.1)), lo), hi) - lo) / (hi - lo) * width

    known = [v for v in ms if v is not None]
    if not known:
        return Html("")
    parts = [h("line", class_="tick", x1=f"{x(t):.1f}", x2=f"{x(t):.1f}", y1=0, y2=height) for t in (1, 10, 100, 1000)]
    low, high = x(min(known)), x(max(known))
    parts.append(h("rect", class_="band", x=f"{low:.1f}", y=height / 2 - 2, width=f"{high - low:.1f}", height=4))
    parts += [
        h("rect", class_=f"s{i}", x=f"{x(v) - 1.5:.1f}", y=1, width=3, height=height - 2)
        for i, v in enumerate(ms)
        if v is not None
    ]
    return h("svg", *parts, class_="range", viewBox=f"0 0 {width} {height}", width=width, height=height, role="img",
             aria_label="p50, p95 and p99 on a log scale from 0.1 ms to 10 s")  # fmt: skip


# ------------------------------------------------------------------------------------ sections


def card(title: str, *body: Any, note: str | None = None, href: str | None = None, wide: bool = False) -> Html:
    return h(
        "section",
        h("h3", a(title, href)),
        h("p", note, class_="note") if note else None,
        *body,
        class_="card wide" if wide else "card",
    )


def empty(message: str) -> Html:
    return h("p", message, class_="empty")


def rows_table(head: Sequence[Any], rows: Sequence[Sequence[Any]], cls: str = "rows") -> Html:
    """A table; a cell that is a (content, class) pair gets the class, a `th:` content is a row header."""

    def cell(c: Any, tag: str = "td") -> Html:
        if isinstance(c, tuple):
            return h(tag, c[0], class_=c[1])
        return h(tag, c)

    body = [h("tr", *(cell(c, "th" if i == 0 and cls == "bars" else "td") for i, c in enumerate(r))) for r in rows]
    thead = h("thead", h("tr", *(h("th", c) for c in head))) if head else None
    return h("div", h("table", thead, h("tbody", *body), class_=cls), class_="scroll")


def _bars(bars: list[dict[str, Any]], series: Sequence[str], empty_text: str, links: dict[str, str]) -> Html:
    if not bars:
        return empty(empty_text)
    scale = max((sum(v["value"] or 0 for v in b["values"]) for b in bars), default=0)
    legend = None
    if len(series) > 1:
        legend = h(
            "p",
            *(join([h("span", class_=f"key s{i % 6}"), s.replace("_", " "), " "]) for i, s in enumerate(series)),
            class_="legend",
        )
    rows = []
    for b in bars:
        label = a(b["label"], href_of(b.get("href"), links))
        chart = hbar([v["value"] for v in b["values"]], scale)
        if legend is None:
            rows.append([label, chart, (num(b["values"][0]), "n")])
        else:  # the numbers under the bar, each after its series' colour
            numbers = [
                join([h("span", class_=f"key s{i % 6}", title=v["label"]), num(v)]) for i, v in enumerate(b["values"])
            ]
            rows.append([label, join([chart, h("div", *numbers, class_="series")])])
    return join([legend, rows_table([], rows, cls="bars")])


def _cell(value: Any, links: dict[str, str]) -> Any:
    if isinstance(value, dict) and "text" in value:
        return a(value["text"], href_of(value.get("href"), links, value.get("service")))
    return h("span", "–", class_="dim") if value is None else value


def panel(p: dict[str, Any], links: dict[str, str]) -> Html:
    """One domain panel of the service's hook."""
    opts: dict[str, Any] = {"note": p.get("note"), "href": href_of(p.get("href"), links)}
    if p["kind"] == "kv":
        items = [h("div", h("dt", a(s["label"], href_of(s.get("href"), links))), h("dd", num(s))) for s in p["stats"]]
        return card(p["title"], h("dl", *items, class_="kv"), **opts)
    if p["kind"] == "bars":
        return card(p["title"], _bars(p["bars"], p["series"], p["empty"], links), **opts)
    if p["kind"] == "table":
        rows = [[_cell(c, links) for c in row] for row in p["rows"]]
        body = rows_table(p["columns"], rows) if rows else empty(p["empty"])
        return card(p["title"], body, h("p", num(p["count"]), " rows", class_="note"), wide=True, **opts)
    return card(p.get("title", "Error"), h("p", p.get("error"), class_="error"))


def summary(snap: dict[str, Any]) -> Html:
    series = snap.get("series", {})
    tiles = [
        h(
            "div",
            h("div", s["label"], class_="label"),
            h("div", num(s), class_="big"),
            sparkline(series[s["key"]], s["label"] if s["key"] == "lag.total" else f"{s['label']} per second")
            if s["key"] in series
            else None,
            class_="tile",
        )
        for s in snap["summary"][:6]
    ]
    rest = join([join([s["label"], " ", num(s)]) for s in snap["summary"][6:]], " · ")
    return join([h("section", *tiles, class_="tiles"), h("p", rest, class_="status")])


def topics(snap: dict[str, Any]) -> Html:
    if not snap["topics"]:
        return card("Messages by topic", empty("nothing consumed or published yet"))
    head = ["topic", "in", "in since start", "out", "out since start"]
    rows = [
        [t["topic"], *((num(t[k]), "n") for k in ("in_rate", "in_total", "out_rate", "out_total"))]
        for t in snap["topics"]
    ]
    note = f"rates over the last {snap['rate_window_s']:.0f} s; totals since this instance started"
    return card("Messages by topic", rows_table(head, rows), note=note, wide=True)


def lag(snap: dict[str, Any]) -> Html:
    if not snap["lag"]:
        return card("Consumer lag", empty("this service has no consumers"))
    rows = []
    for g in snap["lag"]:
        parts = g["partitions"]
        if parts:
            chart = join(
                [
                    columns([p["value"] for p in parts], [p["label"] for p in parts]),
                    h("div", *(h("span", p["label"], ":", num(p), class_="part") for p in parts), class_="parts"),
                ]
            )
        else:
            chart = h("span", "no partition of it assigned to this instance", class_="dim")
        topic = join([g["topic"], Html("<br>"), h("span", "group ", g["group"], class_="dim")])
        rows.append([topic, (num(g["total"]), "n"), chart])
    note = "records behind the end of each partition this instance holds"
    return card("Consumer lag", rows_table([], rows, cls="bars"), note=note, wide=True)


def counts(title: str, stats: list[dict[str, Any]], empty_text: str) -> Html:
    bars = [{"label": s["label"], "href": None, "values": [s]} for s in stats]
    return card(title, _bars(bars, ["count"], empty_text, {}), note="since this instance started")


def latency(snap: dict[str, Any]) -> Html:
    if not snap["latency"]:
        return card("Latency", empty("no observations yet"))
    keys = join([join([h("span", class_=f"key s{i}"), q, " "]) for i, q in enumerate(("p50", "p95", "p99"))])
    head = ["", "topic", "count", "p50", "p95", "p99", keys]
    rows = [
        [
            r["family"],
            r["topic"],
            (num(r["count"]), "n"),
            *((num(q), "n") for q in r["quantiles"]),
            latency_range([q["value"] for q in r["quantiles"]]),
        ]
        for r in snap["latency"]
    ]
    note = (
        f"last {snap['latency_window_s'] / 60:.0f} min, estimated from histogram buckets. processing: handling "
        "time per message; event: from the event's time to its processing"
    )
    return card("Latency", rows_table(head, rows), note=note, wide=True)


def health(snap: dict[str, Any]) -> Html:
    items = [
        h(
            "li",
            num(c["up"], "up" if c["ok"] else "down", cls=f"badge {'ok' if c['ok'] else 'bad'}"),
            " ",
            h("b", c["name"]),
            " ",
            h("span", f"{c['ms']} ms" if c.get("ms") is not None else "", class_="dim"),
            h("div", c["error"], class_="error") if c.get("error") else None,
        )
        for c in snap["health"]
    ]
    timers = None
    if snap["timers"]:
        rows = [
            [t["name"], f"every {t['interval_s']:g} s", (num(t["runs"]), "n"), t["last_run"] or "–",
             (t["last_error"] or "", "error")]
            for t in snap["timers"]
        ]  # fmt: skip
        timers = join([h("h4", "Timers"), rows_table(["timer", "", "runs", "last run", "last error"], rows)])
    return card("Health", h("ul", *items, class_="health"), timers)


def render(snap: dict[str, Any], links: dict[str, str], refresh_s: int) -> str:
    """The whole page for `snap`, linking to the other services through `links` (name -> base URL)."""
    service = snap["service"]
    nav = [
        h("a", name, href=links[name], aria_current="page" if name == service else None)
        for name in SERVICES
        if name in links
    ]
    tools = [h("a", label, href=path) for path, label in TOOLS]
    head = join(
        [
            Html('<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'),
            h("title", f"{snap['title']} · dashboard"),
            Html(f'<noscript><meta http-equiv="refresh" content="{int(refresh_s)}"></noscript>') if refresh_s else None,
            Html(f"<style>{STYLE}</style>"),
        ]
    )
    header = h(
        "header",
        h("h1", snap["title"]),
        h("nav", *nav, class_="services", aria_label="services"),
        h("nav", *tools, class_="tools", aria_label="this service"),
    )
    every = f"reloads every {refresh_s} s" if refresh_s > 0 else "does not reload"
    status = h(
        "p",
        f"{snap['instance']} · snapshot {snap['generated_at']} · {every}",
        h("span", " · not refreshing: the service does not answer", class_="stale-note"),
        class_="status",
    )
    domain = [panel(p, links) for p in snap["panels"]]
    operations = [
        topics(snap),
        lag(snap),
        counts("Rejections by error code", snap["rejections"], "no rejections"),
        counts("Dead letters by topic", snap["deadletters"], "no dead letters"),
        counts("Batches applied, by path", snap["batches"], "no batches yet"),
        latency(snap),
        health(snap),
    ]
    main = h(
        "main",
        status,
        summary(snap),
        join([h("h2", "Domain"), h("div", *domain, class_="grid")]) if domain else None,
        h("h2", "Operations"),
        h("div", *operations, class_="grid"),
        id="dash",
        data_generated_at=snap["generated_at"],
    )
    body = h("body", header, main, Html(f"<script>{SCRIPT}</script>"), data_refresh=int(refresh_s))
    return f'<!doctype html>\n<html lang="en"><head>{head}</head>{body}</html>\n'
