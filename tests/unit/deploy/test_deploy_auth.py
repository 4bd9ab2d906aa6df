"""The deployment files against the HTTP rules (contracts.md, Security): Prometheus scrapes with a
bearer token where `credit-keys` writes it, and Grafana has no default admin password."""

from __future__ import annotations

from pathlib import Path

import yaml
from credit_common.security.tokens import PROMETHEUS_TOKEN_FILE

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_prometheus_scrapes_with_a_token_from_a_file() -> None:
    for name in ("prometheus.yml", "prometheus.local.yml"):
        config = yaml.safe_load((DEPLOY / "prometheus" / name).read_text(encoding="utf-8"))
        for job in config["scrape_configs"]:
            auth = job["authorization"]
            assert auth.get("type", "Bearer") == "Bearer", name
            assert Path(auth["credentials_file"]).name == PROMETHEUS_TOKEN_FILE, name
    local = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.local.yml").read_text(encoding="utf-8"))
    where = (DEPLOY / "prometheus" / local["scrape_configs"][0]["authorization"]["credentials_file"]).resolve()
    assert where == (DEPLOY.parent / ".local" / "credentials" / PROMETHEUS_TOKEN_FILE).resolve()


def test_grafana_has_no_default_admin_password() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    password = compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password
