"""Settings: the only place the environment is read."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default local ports of the five services (contracts.md, HTTP).
SERVICE_PORTS = {"designation": 8101, "sharing": 8102, "warning": 8103, "objection": 8104, "cases": 8105}


class Settings(BaseSettings):
    """Configuration shared by every service and script (contracts.md, Configuration)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # How this process authenticates to Kafka (contracts.md, Security): SCRAM-SHA-512 over
    # SASL_PLAINTEXT on the local loopback stack, SASL_SSL (with the cluster's CA) in production.
    # Unset, a client has no credentials and the local broker refuses it.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str | None = None
    # Act as this principal (`service:sharing`, `operator:local`, `admin`): the Kafka settings not
    # given above are read from its file in the credentials directory the local stack writes.
    credit_principal: str = ""
    credit_credentials_dir: str = ".local/credentials"
    database_url: str = "postgresql://credit:credit@127.0.0.1:15432/credit"
    credit_now: datetime | None = Field(
        default=None, description="The platform clock starts at this RFC 3339 time and runs on from it."
    )
    # One deployment of the platform among several on the same broker and database (a test
    # suite, a staging copy): its services' schemas and consumer groups carry this prefix, so two
    # deployments never share a row or a partition. Empty: the names are the service names.
    credit_instance: str = Field(default="", pattern=r"^([a-z][a-z0-9]{0,15})?$")
    log_level: str = "INFO"
    otel_exporter_otlp_endpoint: str | None = None
    # Share of traces started here that are recorded (messages arriving sampled always are).
    credit_trace_sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)

    # A service logs in (DATABASE_URL) as its schema's runtime role, which reads and writes rows
    # only; `credit-migrate` (as admin) makes it. Given the owner's login, a service migrates its
    # schema at start as that owner (never as admin).
    credit_db_owner_url: str | None = None
    # `credit-migrate`: the runtime roles' secrets by service, as JSON (a secret store hands them
    # in); a service not named gets a new one, printed.
    credit_db_passwords: dict[str, str] = Field(default_factory=dict)
    credit_db_pool_max: int = 10
    credit_http_host: str = "127.0.0.1"
    credit_http_port: int | None = None
    # Consumer wrapper: the most records one batch transaction takes.
    credit_consumer_batch_max: int = 2000
    credit_consumer_batch_timeout_ms: int = 50
    credit_relay_batch_max: int = 2000
    # The relay leader's lease: the server drops a leader it has not heard from for this long
    # (its lock passes to another instance), and a leader stops acting after half of it.
    credit_relay_lease_s: float = 10.0
    # How often each service deletes inbox (and ledger) rows older than their topics' retention.
    credit_prune_interval_s: float = 3600.0
    # Seconds a consumer's loop may go without coming back from a fetch before readiness turns red.
    credit_consumer_stall_s: float = 60.0
    # The consumer groups' liveness: a member silent for the session timeout, or not back from a
    # batch within the poll interval, is dropped from its group and its partitions move on.
    credit_kafka_session_timeout_ms: int = 30_000
    credit_kafka_max_poll_interval_ms: int = 300_000
    credit_topic_partitions: int = 12
    credit_topic_replication: int = 1

    # The operator dashboard (GET /). Base URLs of the services' dashboards by service name, as JSON
    # (CREDIT_DASHBOARD_LINKS='{"sharing": "https://sharing.example"}'); a service not named is linked
    # on the host the page was asked on, at its default port.
    credit_dashboard_links: dict[str, str] = Field(default_factory=dict)
    credit_dashboard_refresh_s: int = Field(default=5, ge=0, le=3600, description="0: the page never reloads")
    credit_dashboard_sample_s: float = Field(default=2.0, gt=0, le=60)
    credit_dashboard_window_s: float = Field(default=900.0, ge=60, le=86_400)
    # One snapshot serves every page and JSON request within this many seconds.
    credit_dashboard_cache_s: float = Field(default=2.0, ge=0, le=60)

    # HTTP bearer tokens (contracts.md, Security): verified against the JWKS at CREDIT_JWKS_URL
    # (production: the OpenID Connect provider's jwks_uri), else the file CREDIT_JWKS_FILE, else
    # `jwks.json` of the credentials directory (the local stack's own issuer, `credit-keys`).
    credit_jwks_url: str | None = None
    credit_jwks_file: str | None = None
    credit_jwt_issuer: str = "credit-platform-local"
    credit_jwt_audience: str = "credit-platform"

    @model_validator(mode="after")
    def _principal_credentials(self) -> Settings:
        return self._read_principal_file()

    def _read_principal_file(self) -> Settings:
        if not self.credit_principal or self.kafka_sasl_username:
            return self
        path = Path(self.credit_credentials_dir) / (self.credit_principal.replace(":", "-") + ".json")
        if not path.exists():
            raise ValueError(f"CREDIT_PRINCIPAL={self.credit_principal}: no credentials file {path}")
        kafka = json.loads(path.read_bytes()).get("kafka") or {}
        if kafka:
            self.kafka_security_protocol = kafka["security_protocol"]
            self.kafka_sasl_mechanism = kafka["sasl_mechanism"]
            self.kafka_sasl_username = kafka["username"]
            self.kafka_sasl_password = SecretStr(kafka["password"])
        return self

    @field_validator("credit_db_passwords", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value  # as the environment gives it

    def as_principal(self, principal: str) -> Settings:
        """These settings, authenticated as `principal` by its credentials file."""
        copy = self.model_copy(update={"credit_principal": principal, "kafka_sasl_username": ""})
        return copy._read_principal_file()

    def schema_of(self, service: str) -> str:
        """The database schema (and, behind it, the login role) of `service` in this deployment."""
        return f"{self.credit_instance}_{service}" if self.credit_instance else service

    def group_of(self, group: str) -> str:
        """The Kafka consumer group `group` (`sharing`, `designation.feedback`) in this deployment.
        The deployment's name comes last, so every group of a service begins with its name: the
        one prefix its principal's ACL grants (`sharing@t1a2b3c4`)."""
        return f"{group}@{self.credit_instance}" if self.credit_instance else group


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
