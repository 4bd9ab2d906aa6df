"""The metric names the Grafana dashboards (deploy/grafana/dashboards) query, and the series names a
`/metrics` exposition offers, so a test can check the one against the other: the unit tests against
the families the code registers, an end-to-end test against the live `/metrics` of running services.

    names = dashboards_metric_names()                       # {"designation.json": {"credit_up", ...}, ...}
    offered = series_names_from_exposition(httpx.get(f"{url}/metrics").text)
    unknown = names["designation.json"] - offered - PROMETHEUS_SERIES
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

#: Series Prometheus makes itself for every scrape target (a dashboard may query them; no service exports them).
PROMETHEUS_SERIES = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling"}
)

# PromQL words that look like metric names but are not: set and grouping operators, modifiers, literals.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"inf", "nan", "start", "end"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*(?:"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\')')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_SELECTOR = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_OFFSET = re.compile(r"\boffset\s+-?\w+")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: every bare vector selector (`name{...}[...]`)
    and every `{__name__="..."}` matcher; functions, aggregations, label names in `by (...)`,
    keywords, numbers, durations and Grafana variables (`$__rate_interval`) are not metric names."""
    names = {a or b for a, b in _NAME_MATCHER.findall(expr)}
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub("1", text)
    text = _SELECTOR.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every query in a dashboard: panel targets (rows' nested panels too) and
    templating variables backed by a query."""
    queries: list[tuple[str, str]] = []
    for panel in _walk(dashboard.get("panels", [])):
        for target in panel.get("targets", []) or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                queries.append((f"panel {panel.get('title', panel.get('id'))!r} {target.get('refId', '')}", expr))
    for variable in (dashboard.get("templating") or {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") != "query" or not isinstance(query, str):
            continue
        # Grafana's Prometheus variable functions: label_values(selector, label), query_result(expr).
        wrapped = re.fullmatch(r"\s*(label_values|query_result)\s*\((.*)\)\s*", query, flags=re.S)
        if wrapped is None:
            continue  # label_names(), metrics(regex): no metric selected by name
        inner = wrapped.group(2)
        if wrapped.group(1) == "label_values":
            inner = re.sub(r"^(.*?)\s*,?\s*\w+\s*$", r"\1", inner, flags=re.S)
        if inner.strip():
            queries.append((f"variable {variable.get('name')!r}", inner))
    return queries


def dashboard_metric_names(dashboard: Mapping[str, Any]) -> set[str]:
    """Every metric name a dashboard's queries select."""
    names: set[str] = set()
    for _, expr in dashboard_queries(dashboard):
        names |= promql_metric_names(expr)
    return names


def load_dashboards(directory: Path = DASHBOARDS) -> dict[str, dict[str, Any]]:
    """File name -> parsed dashboard, for every `*.json` in the directory."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))}


def dashboards_metric_names(directory: Path = DASHBOARDS) -> dict[str, set[str]]:
    """File name -> the metric names that dashboard queries."""
    return {name: dashboard_metric_names(d) for name, d in load_dashboards(directory).items()}


_SERIES_BY_TYPE = {
    "counter": ("",),  # text format 0.0.4 names counters with their `_total`
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
    "stateset": ("",),
}


def series_names_from_exposition(text: str) -> set[str]:
    """The series names a Prometheus text exposition offers: from every `# TYPE` line (so a labelled
    family that has no child yet still counts) by its type (histogram: `_bucket`, `_sum`, `_count`),
    plus the name of every sample line."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                names.update(parts[2] + suffix for suffix in _SERIES_BY_TYPE.get(parts[3], ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def unknown_metric_names(dashboard: Mapping[str, Any], offered: set[str]) -> dict[str, set[str]]:
    """Query location -> the metric names it selects that are neither offered nor made by Prometheus."""
    unknown: dict[str, set[str]] = {}
    for where, expr in dashboard_queries(dashboard):
        missing = promql_metric_names(expr) - offered - PROMETHEUS_SERIES
        if missing:
            unknown.setdefault(where, set()).update(missing)
    return unknown
