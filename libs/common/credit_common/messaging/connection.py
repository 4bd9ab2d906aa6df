"""How every Kafka client of the project connects: the bootstrap servers and the credentials of
the process's principal, from settings (contracts.md, Security). The same code runs against the
local SCRAM stack and a managed cluster with SASL_SSL; nothing else builds connection options."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from credit_common.settings import Settings, get_settings


def kafka_options(bootstrap: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin): `bootstrap`
    (default: `KAFKA_BOOTSTRAP_SERVERS`) and the principal's security settings."""
    s = settings or get_settings()
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap or s.kafka_bootstrap_servers,
        "security_protocol": s.kafka_security_protocol,
    }
    if s.kafka_security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=s.kafka_sasl_mechanism,
            sasl_plain_username=s.kafka_sasl_username,
            sasl_plain_password=s.kafka_sasl_password.get_secret_value(),
        )
    if s.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(cafile=s.kafka_ssl_cafile)
    return options


def librdkafka_config(bootstrap: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The same connection for a librdkafka client (confluent-kafka's admin client: SCRAM users
    and ACLs, which aiokafka's admin client lacks)."""
    s = settings or get_settings()
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap or s.kafka_bootstrap_servers,
        "security.protocol": s.kafka_security_protocol.lower(),
    }
    if s.kafka_security_protocol.startswith("SASL"):
        config.update(
            {
                "sasl.mechanism": s.kafka_sasl_mechanism,
                "sasl.username": s.kafka_sasl_username,
                "sasl.password": s.kafka_sasl_password.get_secret_value(),
            }
        )
    if s.kafka_security_protocol.endswith("SSL") and s.kafka_ssl_cafile:
        config["ssl.ca.location"] = s.kafka_ssl_cafile
    return config
