"""The production deployment files in deploy/ (Prometheus, Grafana, the container build, compose):
parsed, and checked against the code they deploy: contract ports, settings variables, the metric
families the services register, the modules the containers run. Docker is not needed."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from credit_common.settings import SERVICE_PORTS, Settings
from credit_common.telemetry.metrics import ServiceMetrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

from tests.support.dashboards_metrics import (
    DASHBOARDS,
    PROMETHEUS_SERIES,
    dashboard_metric_names,
    dashboard_queries,
    load_dashboards,
    promql_metric_names,
    series_names_from_exposition,
    unknown_metric_names,
)

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SERVICES = tuple(SERVICE_PORTS)
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
HEALTHCHECK_SCRIPT = DEPLOY / "container" / "healthcheck.py"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
SCRAPE_CONFIGS = {"prometheus.yml": "compose", "prometheus.local.yml": "local"}

#: What a service container must be told; everything else has a usable default in Settings.
REQUIRED_SERVICE_ENV = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "CREDIT_HTTP_HOST", "CREDIT_HTTP_PORT"}
#: The families an operator looks at on every service dashboard (the bucket series of histograms).
OPERATOR_VIEW = {
    "credit_messages_consumed_total",
    "credit_messages_published_total",
    "credit_consumer_lag",
    "credit_consumer_batches_total",
    "credit_rejections_total",
    "credit_deadletters_total",
    "credit_processing_seconds_bucket",
    "credit_batch_seconds_bucket",
    "credit_event_latency_seconds_bucket",
    "credit_outbox_pending",
    "credit_http_request_seconds_bucket",
    "credit_up",
}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the metrics the services register

_PROMETHEUS_KINDS: dict[str, type[Any]] = {
    "Counter": Counter,
    "Gauge": Gauge,
    "Histogram": Histogram,
    "Summary": Summary,
}


def service_specific_metrics(service: str) -> list[tuple[str, str]]:
    """(kind, name) of every prometheus_client metric a service's own code constructs (beside the
    common ServiceMetrics), found by reading its source: `Histogram("credit_...", ...)`."""
    found: list[tuple[str, str]] = []
    for path in sorted((ROOT / "services" / service).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imported = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind: str | None = None
            if isinstance(func, ast.Name) and imported.get(func.id) in _PROMETHEUS_KINDS:
                kind = imported[func.id]
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in _PROMETHEUS_KINDS
                and isinstance(func.value, ast.Name)
                and func.value.id == "prometheus_client"
            ):
                kind = func.attr
            if kind is None:
                continue
            name_node = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
                found.append((kind, name_node.value))
    return found


def offered_series(*services: str) -> set[str]:
    """The series names the given services' /metrics offer: ServiceMetrics (with credit_up and the
    HTTP histogram) and each service's own metrics, registered on a fresh registry and exposed."""
    registry = CollectorRegistry()
    ServiceMetrics(services[0] if len(services) == 1 else "platform", registry)
    for service in services:
        for kind, name in service_specific_metrics(service):
            _PROMETHEUS_KINDS[kind](name, "service-specific", registry=registry)
    return series_names_from_exposition(generate_latest(registry).decode())


def test_the_registered_series_follow_the_exposition_names() -> None:
    offered = offered_series("designation")
    assert {"credit_messages_consumed_total", "credit_consumer_lag", "credit_up"} <= offered
    assert {"credit_processing_seconds_bucket", "credit_processing_seconds_sum", "credit_processing_seconds_count"} <= (
        offered
    )
    assert "credit_expiry_lateness_seconds_bucket" in offered  # designation's own histogram (handlers.py)
    assert "credit_processing_seconds" not in offered  # a histogram is queried by its _bucket/_sum/_count
    assert "credit_expiry_lateness_seconds_bucket" not in offered_series("sharing")


def test_designation_constructs_its_expiry_histogram() -> None:
    assert ("Histogram", "credit_expiry_lateness_seconds") in service_specific_metrics("designation")


# ---------------------------------------------------------------- the PromQL checker itself


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (topic) (rate(credit_messages_consumed_total{service="x"}[$__rate_interval]))',
            {"credit_messages_consumed_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, route) "
            '(rate(credit_http_request_seconds_bucket{route!~"/metrics|/health/.*"}[5m])))',
            {"credit_http_request_seconds_bucket"},
        ),
        ("credit_up == 0 and on (service) up", {"credit_up", "up"}),
        (
            "sum(rate(a_total[5m] offset 1h)) / ignoring(code) group_left sum(b_total) > bool 1e3",
            {"a_total", "b_total"},
        ),
        ('{__name__="credit_outbox_pending", service="x"}', {"credit_outbox_pending"}),
        ('label_replace(credit_up, "dep", "$1", "dependency", "(.*)")', {"credit_up"}),
        ("max_over_time(credit_consumer_lag[1h:1m]) * 2", {"credit_consumer_lag"}),
        ("vector(1) + scalar(time())", set()),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def _dashboard(*exprs: str, variable: str | None = None) -> dict[str, Any]:
    panel = {
        "type": "timeseries",
        "title": "t",
        "targets": [{"refId": chr(65 + n), "expr": e} for n, e in enumerate(exprs)],
    }
    row = {"type": "row", "title": "r", "panels": [panel]}
    templating = {"list": [{"type": "query", "name": "v", "query": variable}]} if variable else {"list": []}
    return {"panels": [row], "templating": templating}


def test_the_checker_fails_a_dashboard_querying_an_unregistered_metric() -> None:
    offered = offered_series("sharing")
    bad = _dashboard(
        'sum(rate(credit_nonexistent_total{service="sharing"}[5m]))',
        "credit_processing_seconds_total",  # a histogram has no _total
        "histogram_quantile(0.5, sum by (le) (rate(credit_expiry_lateness_seconds_bucket[5m])))",  # designation's
        "sum(credit_outbox_pending)",
        variable='label_values(credit_missing_gauge{service="sharing"}, topic)',
    )
    unknown = set().union(*unknown_metric_names(bad, offered).values())
    assert unknown == {
        "credit_nonexistent_total",
        "credit_processing_seconds_total",
        "credit_expiry_lateness_seconds_bucket",
        "credit_missing_gauge",
    }
    assert not unknown_metric_names(_dashboard("sum(credit_outbox_pending)", "up"), offered)


def test_series_names_from_exposition() -> None:
    text = (
        "# HELP x_total X.\n# TYPE x_total counter\n"
        "# TYPE h_seconds histogram\n"
        'h_seconds_bucket{le="+Inf"} 0.0\n'
        "# TYPE g gauge\ng 1.0\n"
        "untyped_sample 2\n"
    )
    assert series_names_from_exposition(text) == {
        "x_total",
        "h_seconds_bucket",
        "h_seconds_sum",
        "h_seconds_count",
        "g",
        "untyped_sample",
    }


# ---------------------------------------------------------------- Prometheus


@pytest.mark.parametrize(("file", "variant"), SCRAPE_CONFIGS.items())
def test_scrape_targets_are_the_services_on_their_contract_ports(file: str, variant: str) -> None:
    config = load_yaml(DEPLOY / "prometheus" / file)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "credit" in jobs, f"{file}: no job 'credit'"
    job = jobs["credit"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    seen: dict[str, str] = {}
    for static in job["static_configs"]:
        service = static.get("labels", {}).get("service")
        assert service in SERVICE_PORTS, f"{file}: target group {static} has no known `service` label"
        for target in static["targets"]:
            host, _, port = target.rpartition(":")
            assert int(port) == SERVICE_PORTS[service], f"{file}: {target} is not {service}'s port"
            assert host == (service if variant == "compose" else "127.0.0.1"), f"{file}: {target}"
            assert target not in seen, f"{file}: {target} twice"
            seen[target] = service
    assert sorted(seen.values()) == sorted(SERVICES)


def test_compose_scrape_targets_are_compose_services_on_their_http_ports() -> None:
    compose = load_compose()
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host in compose["services"], f"{target}: no compose service {host}"
                env = environment(compose["services"][host])
                assert env.get("CREDIT_HTTP_PORT") == port, f"{target}: {host} serves on {env.get('CREDIT_HTTP_PORT')}"


# ---------------------------------------------------------------- Grafana


def provisioned_datasource() -> dict[str, Any]:
    datasources = load_yaml(DATASOURCES)["datasources"]
    assert len(datasources) == 1
    ds: dict[str, Any] = datasources[0]
    return ds


def test_datasource_is_prometheus_at_the_url_compose_gives_grafana() -> None:
    ds = provisioned_datasource()
    assert ds["type"] == "prometheus"
    assert ds["uid"]
    assert ds["access"] == "proxy"
    variable = re.fullmatch(r"\$\{?(\w+)\}?", ds["url"])
    assert variable, "the URL comes from Grafana's environment (compose, or a Grafana beside `make up`)"
    compose = load_compose()
    url = urlsplit(environment(compose["services"]["grafana"])[variable.group(1)])
    assert url.hostname == "prometheus"
    assert url.hostname in compose["services"]
    assert any(container_port(p) == url.port for p in compose["services"]["prometheus"]["ports"])


def test_dashboard_provider_reads_where_compose_mounts_the_dashboards() -> None:
    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert len(providers) == 1
    assert providers[0]["type"] == "file"
    mounts = bind_mounts(load_compose()["services"]["grafana"])
    assert mounts[providers[0]["options"]["path"]] == DASHBOARDS
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    home = environment(load_compose()["services"]["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert (DASHBOARDS / Path(home).relative_to(providers[0]["options"]["path"])).is_file()


def test_every_service_has_a_dashboard_and_there_is_an_overview() -> None:
    assert set(load_dashboards()) == {f"{s}.json" for s in SERVICES} | {"platform.json"}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


@pytest.mark.parametrize("file", sorted(load_dashboards()))
def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource(file: str) -> None:
    dashboard = load_dashboards()[file]
    uid = provisioned_datasource()["uid"]
    assert dashboard["uid"]
    assert dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards carry no database id"

    def datasources(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    yield value
                yield from datasources(value)
        elif isinstance(node, list):
            for item in node:
                yield from datasources(item)

    for ds in datasources(dashboard):
        assert isinstance(ds, dict), f"{file}: datasource {ds!r} by name, not by uid"
        assert ds == {"type": "prometheus", "uid": uid}, f"{file}: datasource {ds}"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), f"{file}: duplicate panel ids"
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, f"{file}: {panel['title']} off the grid"
        assert grid["x"] + grid["w"] <= 24, f"{file}: {panel['title']} off the grid"
        if panel["type"] != "row":
            assert panel.get("datasource"), f"{file}: {panel['title']} has no datasource"
            assert panel.get("targets"), f"{file}: {panel['title']} queries nothing"


def test_dashboard_uids_are_unique() -> None:
    uids = [d["uid"] for d in load_dashboards().values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("file", sorted(load_dashboards()))
def test_dashboard_queries_only_metrics_a_service_registers(file: str) -> None:
    dashboard = load_dashboards()[file]
    service = file.removesuffix(".json")
    offered = offered_series(*SERVICES) if service == "platform" else offered_series(service)
    assert not unknown_metric_names(dashboard, offered)


@pytest.mark.parametrize("service", SERVICES)
def test_service_dashboard_shows_that_service_and_the_operator_view(service: str) -> None:
    dashboard = load_dashboards()[f"{service}.json"]
    for where, expr in dashboard_queries(dashboard):
        assert re.search(rf'\bservice\s*=\s*"{service}"', expr), f"{service}.json {where}: not filtered to {service}"
    missing = OPERATOR_VIEW - dashboard_metric_names(dashboard)
    assert not missing, f"{service}.json shows nothing of {sorted(missing)}"


def test_overview_shows_the_operator_view_and_designation_dashboard_its_own_histogram() -> None:
    dashboards = load_dashboards()
    assert not OPERATOR_VIEW - dashboard_metric_names(dashboards["platform.json"])
    assert dashboard_metric_names(dashboards["platform.json"]) - offered_series(*SERVICES) <= PROMETHEUS_SERIES
    for kind, name in service_specific_metrics("designation"):
        wanted = f"{name}_bucket" if kind == "Histogram" else name
        assert wanted in dashboard_metric_names(dashboards["designation.json"])


# ---------------------------------------------------------------- compose

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*)|(:?\?[^}]*))?\}|\$(\w+)")


def interpolate(value: Any) -> str:
    """Compose's variable substitution with nothing set but the required secrets: `${X:-default}`
    is its default, `${X:?message}` (a secret compose demands) a value the operator gave, `$$` a `$`."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group(3) is not None:
            return f"given-{m.group(1).lower()}"
        return m.group(2) or ""

    return _INTERPOLATION.sub(one, str(value))


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return compose


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def container_port(mapping: Any) -> int:
    return int(str(mapping).split("/")[0].rsplit(":", 1)[-1])


def host_port(mapping: Any) -> int:
    parts = str(mapping).split("/")[0].split(":")
    return int(parts[-2]) if len(parts) >= 2 else int(parts[-1])


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (paths relative to deploy/)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def built_from_dockerfile(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    return context == ROOT and (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def test_compose_runs_every_service_from_the_one_dockerfile() -> None:
    services = load_compose()["services"]
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        assert built_from_dockerfile(services[name]), f"{name} is not built from {DOCKERFILE.relative_to(ROOT)}"
        assert compose_command(services[name]) == ["python", "-m", f"services.{name}"]
    images = {services[name].get("image") for name in services if built_from_dockerfile(services[name])}
    assert len(images) == 1, f"one image for all services, not {images}"


def test_compose_images_of_the_stack() -> None:
    services = load_compose()["services"]
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"] == "postgres:15"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_compose_depends_on_defined_services_with_valid_conditions() -> None:
    services = load_compose()["services"]
    dockerfile_has_healthcheck = any(i.keyword == "HEALTHCHECK" for i in dockerfile_instructions())
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on undefined {dep}"
            assert dep != name
            condition = spec.get("condition", "service_started")
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {dep}: {condition}"
            target = services[dep]
            if condition == "service_healthy":
                check = target.get("healthcheck")
                has_check = bool(check and not check.get("disable")) or (
                    check is None and built_from_dockerfile(target) and dockerfile_has_healthcheck
                )
                assert has_check, f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert str(target.get("restart", "no")) == "no", f"{dep} is a one-shot job: no restart"


def test_compose_services_are_configured_through_settings() -> None:
    compose = load_compose()
    services = compose["services"]
    fields = {name.upper() for name in Settings.model_fields}
    postgres_env = environment(services["postgres"])
    advertised = broker_properties()["advertised.listeners"]
    for name, service in services.items():
        if not built_from_dockerfile(service) or "KAFKA_BOOTSTRAP_SERVERS" not in environment(service):
            continue  # (the certs job talks to nobody)
        env = environment(service)
        unknown = {k for k in env if k not in fields | {"KAFKA_ADMIN_PASSWORD"}}
        assert not unknown, f"{name}: {sorted(unknown)} are not settings (credit_common.settings)"
        # The principal's credentials file is the init job's to write: here only its name.
        principal = env.pop("CREDIT_PRINCIPAL", None)
        settings = Settings.model_validate({k.lower(): v for k, v in env.items() if k != "KAFKA_ADMIN_PASSWORD"})
        host, _, port = settings.kafka_bootstrap_servers.rpartition(":")
        assert host in services, f"{name}: broker {host} is not a compose service"
        assert f"SASL_SSL://{host}:{port}" in advertised, f"{name}: {host}:{port} not advertised with TLS"
        assert settings.kafka_ssl_cafile == "/certs/ca.pem"
        assert any(v.startswith("certs:/certs") for v in service["volumes"]), name
        if name not in SERVICES:
            continue
        assert principal == f"service:{name}", f"{name} acts as its own principal"
        assert f"credentials:{settings.credit_credentials_dir}:ro" in service["volumes"], name
        missing = REQUIRED_SERVICE_ENV - set(env)
        assert not missing, f"{name}: {sorted(missing)} not set"
        assert settings.credit_http_port == SERVICE_PORTS[name]
        assert settings.credit_http_host == "0.0.0.0"
        db = urlsplit(settings.database_url)
        assert db.hostname in services
        assert db.hostname == "postgres"
        assert db.port == 5432
        # Its own runtime role (rows only), whose secret the init job set: never the admin.
        assert db.username == f"svc_{name}" != postgres_env["POSTGRES_USER"]
        assert db.password == f"given-{name}_db_password"
        assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"]
        init = environment(services["init"])
        assert json.loads(init["CREDIT_DB_PASSWORDS"])[name] == db.password, "init sets the secret the service uses"
        assert urlsplit(init["DATABASE_URL"]).username == postgres_env["POSTGRES_USER"]


def test_compose_publishes_the_contract_ports_and_checks_health() -> None:
    services = load_compose()["services"]
    for name in SERVICES:
        service = services[name]
        published = {(host_port(p), container_port(p)) for p in service.get("ports", [])}
        assert (SERVICE_PORTS[name], SERVICE_PORTS[name]) in published, f"{name}: {published}"
        check = service["healthcheck"]["test"]
        assert check[0] in {"CMD", "CMD-SHELL"}
        assert "/app/deploy/container/healthcheck.py" in " ".join(check)
    copied = {i.args.split()[-1] for i in dockerfile_instructions() if i.keyword == "COPY"}
    assert "./deploy/container/healthcheck.py" in copied


def broker_properties() -> dict[str, str]:
    """deploy/kafka/compose.properties, the compose broker's configuration."""
    lines = (DEPLOY / "kafka" / "compose.properties").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_kafka_is_kraft_with_a_network_and_a_host_listener_all_authenticated() -> None:
    services = load_compose()["services"]
    kafka = services["kafka"]
    assert "/etc/credit/kafka.properties" in " ".join(kafka["volumes"])
    command = " ".join(compose_command(kafka))
    assert "--add-scram" in command, "formatted with the admin's SCRAM credential before the first start"
    assert "kafka-server-start.sh /tmp/server.properties" in command
    assert environment(kafka)["CLUSTER_ID"]
    props = broker_properties()
    assert set(props["process.roles"].split(",")) == {"broker", "controller"}
    listeners = dict(item.split("://") for item in props["listeners"].split(","))
    advertised = dict(item.split("://") for item in props["advertised.listeners"].split(","))
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    assert set(listeners) <= set(protocols)
    assert set(advertised) <= set(listeners)
    assert props["controller.listener.names"] in listeners
    assert props["inter.broker.listener.name"] in advertised
    # Nobody unauthenticated: SASL everywhere, TLS wherever a client connects, no ACL no access.
    assert all(p.startswith("SASL_") for p in protocols.values()), protocols
    assert all(protocols[name] == "SASL_SSL" for name in advertised), protocols
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    hosts = {address.rsplit(":", 1)[0] for address in advertised.values()}
    assert "kafka" in hosts, "a listener for the compose network"
    host_listener = next(a for a in advertised.values() if not a.startswith("kafka:"))
    published = {host_port(p): container_port(p) for p in kafka["ports"]}
    port = int(host_listener.rsplit(":", 1)[1])
    assert published.get(port) == port, f"the host listener {host_listener} is not published"
    assert int(listeners[next(k for k, v in advertised.items() if v == host_listener)].rsplit(":", 1)[1]) == port


def test_compose_init_job_creates_topics_and_loads_the_catalogue() -> None:
    services = load_compose()["services"]
    jobs = [
        s
        for s in services.values()
        if built_from_dockerfile(s) and "credit_common.messaging.topics" in " ".join(compose_command(s))
    ]
    assert len(jobs) == 1, "one job creates the topics"
    command = " ".join(compose_command(jobs[0]))
    assert "credit-reference publish deploy/catalog" in command
    assert importlib.util.find_spec("credit_common.messaging.topics") is not None
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^credit-reference\s*=\s*"credit_common\.reference\.cli:main"', pyproject, re.M)
    assert (ROOT / "deploy" / "catalog").is_dir()
    assert any(i.keyword == "COPY" and i.args.split()[0] == "deploy/catalog" for i in dockerfile_instructions())
    for name in SERVICES:
        condition = services[name]["depends_on"]
        assert any(c.get("condition") == "service_completed_successfully" for c in condition.values()), name


def test_compose_bind_mounts_and_volumes_exist() -> None:
    compose = load_compose()
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: named volume {source} not declared"
    mounts = bind_mounts(compose["services"]["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus" / "prometheus.yml"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_service_module_exists(name: str) -> None:
    package = ROOT / "services" / name
    assert (package / "__init__.py").is_file(), f"services/{name} is not a package"
    assert (package / "__main__.py").is_file(), (
        f"services/{name} has no __main__.py: `python -m services.{name}` cannot run"
    )


# ---------------------------------------------------------------- Dockerfile


class Instruction:
    def __init__(self, keyword: str, args: str) -> None:
        self.keyword = keyword
        self.args = args

    def __repr__(self) -> str:
        return f"{self.keyword} {self.args}"


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "a continuation line runs off the end"
    return instructions


def _stages() -> list[tuple[str, list[Instruction]]]:
    """(resolved base image, instructions) of every build stage."""
    instructions = dockerfile_instructions()
    defaults: dict[str, str] = {}
    stages: list[tuple[str, list[Instruction]]] = []
    for i in instructions:
        if i.keyword == "ARG" and not stages and "=" in i.args:
            key, _, value = i.args.partition("=")
            defaults[key] = value
        elif i.keyword == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), i.args.split()[0])
            stages.append((image, []))
        elif stages:
            stages[-1][1].append(i)
    return stages


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    assert all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


def test_dockerfile_builds_on_python_311_slim_with_uv_from_the_lock() -> None:
    stages = _stages()
    python_stages = [image for image, _ in stages if image.startswith("python:")]
    assert python_stages
    assert set(python_stages) == {"python:3.11-slim"}
    assert stages[-1][0] == "python:3.11-slim", "the runtime image is python:3.11-slim"
    runs = [i.args for _, body in stages for i in body if i.keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs, "the environment is installed with uv sync"
    assert all("--frozen" in r and "--no-dev" in r for r in syncs), syncs
    copies = [i.args for _, body in stages for i in body if i.keyword == "COPY"]
    first_sync = next(n for n, r in enumerate(i for _, body in stages for i in body) if "uv sync" in r.args)
    before = [i for _, body in stages for i in body][:first_sync]
    assert any(i.keyword == "COPY" and "uv.lock" in i.args.split() for i in before), "uv.lock before uv sync"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".local", ".venv"} <= ignored
    assert any("__pycache__" in p for p in ignored)
    for args in copies:
        parts = [p for p in args.split() if not p.startswith("--")]
        if args.startswith("--from"):
            continue
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            assert source.split("/")[0] not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_dockerfile_runs_a_service_module_as_a_non_root_user_with_a_healthcheck() -> None:
    _, runtime = _stages()[-1]
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    cmd = next(i for i in reversed(runtime) if i.keyword == "CMD")
    assert not [i for i in runtime if i.keyword == "ENTRYPOINT"]
    argv = _exec_form(cmd.args)
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    assert re.fullmatch(r"services\.\w+", module), module
    assert importlib.util.find_spec(module) is not None
    assert (ROOT / module.replace(".", "/") / "__main__.py").is_file()
    health = next(i for i in runtime if i.keyword == "HEALTHCHECK")
    check = _exec_form(health.args.split(" CMD ", 1)[1])
    assert check[:2] == ["python", "/app/deploy/container/healthcheck.py"]
    assert check[2:] == ["/health/live"]
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert "CREDIT_HTTP_HOST=0.0.0.0" in env, "the service listens beyond the container's loopback"
    assert "/app/.venv/bin" in env


# ---------------------------------------------------------------- the container's health probe


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("credit_container_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def health_server() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health/live" else 503)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_script_asks_the_configured_port(health_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = _load_healthcheck()
    monkeypatch.setenv("CREDIT_HTTP_PORT", str(health_server))
    assert probe.main(["healthcheck.py", "/health/live"]) == 0
    assert probe.main(["healthcheck.py"]) == 0
    assert probe.main(["healthcheck.py", "/health/ready"]) == 1  # 503
    with socket.socket() as closed:  # bound, never listening: the connection is refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("CREDIT_HTTP_PORT", str(closed.getsockname()[1]))
        assert probe.main(["healthcheck.py"]) == 1


def test_healthcheck_script_falls_back_to_the_contract_ports() -> None:
    assert tuple(sorted(_load_healthcheck().DEFAULT_PORTS)) == tuple(sorted(SERVICE_PORTS.values()))


def _uv() -> str:
    """uv as the Makefile finds it: on PATH, or where `make deps` installs it."""
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(found).is_file(), f"uv not found ({found}): `make deps` installs it"
    return found


def test_the_image_environment_has_the_services_and_not_the_demo(tmp_path: Path) -> None:
    """The build stage done for real, without Docker: its COPYs from the repository into a
    directory, then its `uv sync` commands (from the lock, with the uv cache `make deps` filled).
    The services and the one-shot jobs import there; the demo, a development tool, does not."""
    build = next(body for _, body in _stages() if any("uv sync" in i.args for i in body))
    app = tmp_path / "app"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(app / ".venv"), "UV_PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    for i in build:
        if i.keyword == "WORKDIR":
            assert i.args == "/app"
        elif i.keyword == "COPY" and not i.args.startswith("--from"):
            *sources, dest = i.args.split()
            for source in sources:  # Docker's rules: into a directory when `dest` ends with "/"
                target = app / dest / Path(source).name if dest.endswith("/") else app / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, target)
        elif i.keyword == "RUN" and "uv sync" in i.args:
            command = i.args.removeprefix("--mount=type=cache,target=/root/.cache/uv").strip()
            sync = shlex.split(command.split("&&")[0])
            assert sync[:2] == ["uv", "sync"], command
            subprocess.run([_uv(), *sync[1:], "--quiet"], cwd=app, env=env, check=True, timeout=300)
    python = str(app / ".venv" / "bin" / "python")
    ok = subprocess.run(
        [python, "-c", "import services.designation.app, services.cases.app, credit_common.reference.cli"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    demo = subprocess.run([python, "-c", "import credit_demo"], cwd=tmp_path, capture_output=True, text=True)
    assert demo.returncode != 0
    assert "No module named 'credit_demo'" in demo.stderr, demo.stderr[-2000:]
    assert not (app / "libs" / "demo" / "credit_demo").exists()
    assert not (app / ".venv" / "bin" / "credit-demo").exists()
