"""Shared fixtures: settings for the whole suite."""

from __future__ import annotations

import pytest
from credit_common.db.ready import database_answers
from credit_common.messaging.ready import broker_answers
from credit_common.messaging.topics import ensure_topics
from credit_common.settings import Settings, get_settings

from tests.support.signing import provision_keys
from tests.support.tokens import auth_headers


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def stack(settings: Settings) -> Settings:
    """Fails (never skips) when the stack is not there: `make test` starts it."""
    if not await broker_answers(settings.kafka_bootstrap_servers):
        pytest.fail(f"Kafka is not answering at {settings.kafka_bootstrap_servers}: run `make test`")
    if not await database_answers(settings.database_url):
        pytest.fail("PostgreSQL is not answering at DATABASE_URL: run `make test`")
    await ensure_topics(settings.kafka_bootstrap_servers)
    await provision_keys(settings.kafka_bootstrap_servers)  # before any service starts: its cache has them
    auth_headers()  # the local token issuer exists (its JWKS is what the services verify against)
    return settings
